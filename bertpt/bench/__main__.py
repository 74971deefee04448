from bertpt.bench.throughput import main

main()
