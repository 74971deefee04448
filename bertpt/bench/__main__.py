from bertpt.bench.cli import main

main()
