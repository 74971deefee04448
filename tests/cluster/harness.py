"""A two-host cluster on one machine, for testing the launch scripts on the real daemons.

As root on a Debian machine (see `.ci/run` for the packages) this stands up:
- two "hosts", node1 and node2: network namespaces joined by a veth pair, addresses only inside the
  namespaces, a private /24 that the root namespace routes to `unreachable` (so nothing in that
  range can ever leave the machine), each namespace with its own hostname and /etc/hosts;
- sshd on each host (its own keys, config and pid file; root logs in with a key made here), and an
  ssh client config that the launchers' `ssh` picks up through a wrapper on PATH (the way a user's
  ~/.ssh/config would; /root/.ssh is never touched);
- a real SLURM cluster: munged (own socket), slurmctld on node1, one slurmd per host.

Everything lives in one temporary directory and is torn down by PID: every process still inside
one of our namespaces is killed, then the namespaces, /etc/netns entries and the guard route go.

Why namespaces rather than two slurmd on the loopback: the hosts then have distinct addresses and
hostnames, so rendezvous, `hostname -I`, MPI's interface selection and gloo's address lookup all
behave as on a real cluster (a misconfiguration that works on loopback fails here, as it would there).
Pitfalls learnt on this machine kind: ../shared/notes/cluster-on-one-machine.md (for example
`ip netns exec` remounts /sys, which slurmd does not survive, hence `nsenter` + `unshare -m --uts`).

    python -m tests.cluster.harness     # stand up, print how to use it, wait for Ctrl-C, tear down
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

NODES = ("node1", "node2")
REQUIRED = (
    "ip",
    "nsenter",
    "unshare",
    "munged",
    "slurmctld",
    "slurmd",
    "sbatch",
    "sshd",
    "ssh",
    "ssh-keygen",
    "pdsh",
    "mpirun",
    "nc",
)


class Unavailable(Exception):
    """This machine cannot host the cluster (not root, a package missing)."""


def check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise Unavailable("the cluster harness needs root (network namespaces, daemons)")
    missing = [tool for tool in REQUIRED if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
    if missing:
        raise Unavailable(
            f"missing tools: {', '.join(missing)} (apt-get install slurm-wlm munge openmpi-bin "
            "libopenmpi-dev openssh-server pdsh netcat-openbsd; see .ci/run)"
        )


def _sh(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _pick_subnet() -> str:
    """A 10.213.X.0/24 that nothing on this machine routes yet (several harnesses may run at once)."""
    routes = _sh("ip", "route", "show", "table", "all").stdout
    for k in range(250):
        x = (os.getpid() + k) % 250 + 1
        if f"10.213.{x}.0/24" not in routes:
            return f"10.213.{x}"
    raise Unavailable("no free 10.213.X.0/24 subnet for the test cluster")


class Cluster:
    """Two namespace hosts with sshd and a SLURM cluster. Use as a context manager."""

    def __init__(self, cpus_per_node: int | None = None):
        check_prerequisites()
        self.tag = f"bpt{os.getpid() % 100000}"
        self.ns = {node: f"{self.tag}-{node}" for node in NODES}
        self.cpus = cpus_per_node or len(os.sched_getaffinity(0))
        self.dir: Path | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self._undo: list = []  # teardown steps, run in reverse

    # ---- what tests use -------------------------------------------------------------------------

    def addr(self, node: str) -> str:
        return f"{self.net}.{NODES.index(node) + 1}"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for commands run on the cluster: SLURM's config, the ssh wrapper first on PATH."""
        return {
            **os.environ,
            "SLURM_CONF": str(self.dir / "slurm.conf"),
            "PATH": f"{self.dir / 'bin'}:{os.environ.get('PATH', '')}",
            **extra,
        }

    def on_node(self, node: str, argv: list[str]) -> list[str]:
        """argv run "on" a host: in its network namespace, with its hostname and /etc/hosts, in a
        private mount namespace (the root namespace's mounts and hostname stay as they are)."""
        script = f'mount --bind {self.dir / "hosts"} /etc/hosts && hostname {node} && mkdir -p /run/sshd && exec "$@"'
        return [
            "nsenter",
            f"--net=/run/netns/{self.ns[node]}",
            "unshare",
            "-m",
            "--uts",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            *argv,
        ]

    def run(
        self, node: str, argv: list[str], timeout: float = 600, env: dict | None = None, **kw
    ) -> subprocess.CompletedProcess:
        """Run a command on `node` to completion (output captured, not checked)."""
        return subprocess.run(
            self.on_node(node, argv), capture_output=True, text=True, timeout=timeout, env=env or self.env(), **kw
        )

    def slurm(self, *argv: str, timeout: float = 60) -> str:
        """A SLURM client command (sbatch, scontrol, squeue, scancel ...) on node1; its stdout."""
        proc = self.run("node1", list(argv), timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def job_state(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, RestartCnt, ExitCode, NodeList ...)."""
        out = self.slurm("scontrol", "show", "job", "-o", job_id)
        return dict(field.split("=", 1) for field in out.split() if "=" in field)

    def wait_job(self, job_id: str, timeout: float = 600) -> dict[str, str]:
        """Wait until the job is finished for good (a requeued job goes back to PENDING, not done)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.job_state(job_id)
            if state["JobState"] in (
                "COMPLETED",
                "FAILED",
                "CANCELLED",
                "TIMEOUT",
                "NODE_FAIL",
                "OUT_OF_MEMORY",
                "BOOT_FAIL",
                "DEADLINE",
                "PREEMPTED",
            ):
                return state
            if time.monotonic() > deadline:
                self.slurm("scancel", job_id)
                raise TimeoutError(f"job {job_id} still {state['JobState']} after {timeout:.0f} s")
            time.sleep(1)

    # ---- stand-up -------------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self.dir.chmod(0o755)  # munged (user munge) must reach its socket dir inside
        self._undo.append(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self._network()
        self._ssh()
        self._munge()
        self._slurm()

    def _network(self) -> None:
        self.net = _pick_subnet()
        # the guard first: from the root namespace this range goes nowhere, whatever happens below
        _sh("ip", "route", "add", "unreachable", f"{self.net}.0/24")
        self._undo.append(lambda: _sh("ip", "route", "del", "unreachable", f"{self.net}.0/24", check=False))
        (self.dir / "hosts").write_text("127.0.0.1 localhost\n" + "".join(f"{self.addr(n)} {n}\n" for n in NODES))
        for node in NODES:
            _sh("ip", "netns", "add", self.ns[node])
            self._undo.append(lambda ns=self.ns[node]: _sh("ip", "netns", "del", ns, check=False))
        a, b = f"{self.tag}a", f"{self.tag}b"
        _sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        self._undo.append(lambda: _sh("ip", "link", "del", a, check=False))
        for node, link in zip(NODES, (a, b)):
            ns = self.ns[node]
            _sh("ip", "link", "set", link, "netns", ns)
            _sh("ip", "-n", ns, "link", "set", link, "name", "eth0")
            _sh("ip", "-n", ns, "addr", "add", f"{self.addr(node)}/24", "dev", "eth0")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.out", "wb")
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        self.procs[name] = proc
        return proc

    def _ssh(self) -> None:
        d = self.dir / "ssh"
        d.mkdir()
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key"))
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id"))
        shutil.copy(d / "id.pub", d / "authorized_keys")
        (d / "config").write_text(
            "Host *\n  User root\n"
            f"  IdentityFile {d / 'id'}\n  IdentitiesOnly yes\n  BatchMode yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        )
        bin_dir = self.dir / "bin"
        bin_dir.mkdir()
        ssh = bin_dir / "ssh"  # what ~/.ssh/config would do for a user, without touching /root/.ssh
        ssh.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {d / "config"} "$@"\n')
        ssh.chmod(0o755)
        for node in NODES:
            cfg = d / f"sshd-{node}.conf"
            cfg.write_text(
                f"ListenAddress {self.addr(node)}\nPort 22\nHostKey {d / 'host_key'}\n"
                f"PidFile {d / f'sshd-{node}.pid'}\n"
                f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                "AcceptEnv *\nPermitUserEnvironment no\n"
            )
            self._spawn(f"sshd-{node}", self.on_node(node, ["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)]))
        self._wait(
            lambda: all(self.run(n, ["ssh", n, "true"], timeout=20).returncode == 0 for n in NODES),
            "sshd on both hosts",
        )

    def _munge(self) -> None:
        d = self.dir / "munge"
        d.mkdir()
        shutil.chown(d, "munge", "munge")
        d.chmod(0o755)
        self.munge_socket = d / "munge.socket"
        self._spawn(
            "munged",
            [
                "runuser",
                "-u",
                "munge",
                "--",
                "munged",
                "-F",
                f"--socket={self.munge_socket}",
                f"--pid-file={d / 'munged.pid'}",
                f"--log-file={d / 'munged.log'}",
                f"--seed-file={d / 'munged.seed'}",
            ],
        )
        self._wait(self.munge_socket.exists, "munged")

    def _slurm(self) -> None:
        d = self.dir
        for sub in ("state", *(f"spool/{n}" for n in NODES), *(f"tmpfs/{n}" for n in NODES)):
            (d / sub).mkdir(parents=True)
        nodes = "".join(f"NodeName={n} NodeAddr={self.addr(n)} CPUs={self.cpus} State=UNKNOWN\n" for n in NODES)
        (d / "slurm.conf").write_text(f"""\
ClusterName=bertpt-test
SlurmctldHost=node1({self.addr("node1")})
AuthType=auth/munge
# cred_expire also delays a requeued job's next start (default 120 s; real clusters keep that)
AuthInfo=socket={self.munge_socket},cred_expire=10
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d / "state"}
SlurmdSpoolDir={d / "spool"}/%n
SlurmctldPidFile={d / "slurmctld.pid"}
SlurmdPidFile={d / "spool"}/%n/slurmd.pid
SlurmctldLogFile={d / "slurmctld.log"}
SlurmdLogFile={d / "spool"}/%n/slurmd.log
# pmix puts its per-job dirs under TmpFS: one per node, or the two slurmd on this host collide
TmpFS={d / "tmpfs"}/%n
# no cgroups on this machine (no systemd): track processes by parent, bind nothing, account nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=10
{nodes}PartitionName=test Nodes={",".join(NODES)} Default=YES MaxTime=INFINITE State=UP
""")
        conf = str(d / "slurm.conf")
        self._spawn("slurmctld", self.on_node("node1", ["slurmctld", "-D", "-i", "-f", conf]))
        for node in NODES:
            self._spawn(f"slurmd-{node}", self.on_node(node, ["slurmd", "-D", "-f", conf, "-N", node]))

        def idle() -> bool:
            proc = self.run("node1", ["sinfo", "-h", "-N", "-o", "%N %t"], timeout=20)
            states = dict(line.split() for line in proc.stdout.splitlines() if line.strip())
            return proc.returncode == 0 and all(states.get(n) == "idle" for n in NODES)

        self._wait(idle, "both slurmd idle in sinfo", timeout=60)

    def _wait(self, ready, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
            if dead or time.monotonic() > deadline:
                raise RuntimeError(
                    f"test cluster: {what} not up after {timeout:.0f} s"
                    + (f"; exited: {dead}" if dead else "")
                    + f"; logs in {self.dir}"
                )
            time.sleep(0.2)

    # ---- teardown -------------------------------------------------------------------------------

    def _pids_in_our_namespaces(self) -> list[int]:
        inodes = set()
        for ns in self.ns.values():
            with contextlib.suppress(OSError):
                inodes.add(os.stat(f"/run/netns/{ns}").st_ino)
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                        pids.append(int(entry))
        return pids

    def close(self) -> None:
        """Kill every process of the cluster (daemons, jobs, ssh sessions: all that runs in our
        namespaces, plus munged), then undo the network and files. Safe to call twice."""
        procs = list(self.procs.values())
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            pids = set(self._pids_in_our_namespaces()) | {p.pid for p in procs if p.poll() is None}
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and (
                self._pids_in_our_namespaces() or any(p.poll() is None for p in procs)
            ):
                time.sleep(0.1)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=1)
        self.procs.clear()
        if os.environ.get("BERTPT_KEEP_CLUSTER_DIR") and self.dir:
            self._undo = [u for u in self._undo[1:]]  # keep the directory (logs) for a post-mortem
            print(f"test cluster files kept in {self.dir}")
        while self._undo:
            with contextlib.suppress(Exception):
                self._undo.pop()()


if __name__ == "__main__":
    with Cluster() as c:
        print(
            f"cluster up in {c.dir}\n  export SLURM_CONF={c.dir / 'slurm.conf'} PATH={c.dir / 'bin'}:$PATH\n"
            f"  on a host: {' '.join(c.on_node('node1', ['bash']))}\nCtrl-C tears it down"
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
