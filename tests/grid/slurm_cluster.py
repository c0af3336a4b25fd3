"""A real two-node SLURM cluster on this machine, for the SLURM backend's tests.

Needs root and the ``slurm-wlm`` and ``munge`` packages (installed with apt-get when
missing). It starts munged (as the munge user), then slurmctld and one slurmd per node
(``slurmd -N <node>``, each on its own port and spool folder), with a private configuration
under a temporary folder (``SLURM_CONF``), and waits until both nodes are idle. Both nodes
are this machine with all its cores (``config_overrides``); their names resolve to
127.0.0.1 (added to /etc/hosts), since torch.distributed uses the first node's name as the
rendezvous address of a multi-node job.

Accounting: there is no slurmdbd, so ``sacct`` cannot answer. Finished jobs stay in
slurmctld's memory for ``MinJobAge`` seconds, where ``squeue --states=all`` and
``scontrol show job`` report their final state (COMPLETED, FAILED, CANCELLED, ...);
jobcomp/filetxt keeps a line per finished job as well.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("slurmctld", "slurmd")
NODES = ("llavakit-n1", "llavakit-n2")
_READY_SECONDS = 90


class ClusterUnavailable(Exception):
    """Why this machine cannot run the cluster (the tests skip, saying so)."""


@dataclass
class SlurmCluster:
    root: Path
    partition: str
    env: dict[str, str]  # SLURM_CONF for clients
    started: dict[str, int]  # daemon -> pid, the processes this fixture owns

    def command(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def job_state(self, job_id: str) -> str:
        out = self.command("squeue", "--states=all", "-h", "-j", job_id, "-o", "%T", check=False)
        return out.strip() or "UNKNOWN"

    def wait(self, job_id: str, timeout: float = 300) -> str:
        """The job's final state, once it has one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                         "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"):
                return state
            time.sleep(1)
        raise TimeoutError(f"job {job_id} still {self.job_state(job_id)} after {timeout}s")

    def stop(self) -> None:
        for name, pid in self.started.items():
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, 9)


def ensure_packages() -> None:
    if os.geteuid() != 0:
        raise ClusterUnavailable("starting SLURM daemons needs root")
    if all(shutil.which(daemon) for daemon in (*DAEMONS, "munged")):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"],
                    ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise ClusterUnavailable(f"{' '.join(command)} failed: {result.stderr.strip()[-500:]}")


def start_cluster(root: Path) -> SlurmCluster:
    """Start munged (unless one answers), slurmctld and slurmd; wait for the node."""
    ensure_packages()
    host = socket.gethostname()
    for name in (host, *NODES):
        _make_resolvable(name)
    started: dict[str, int] = {}
    if not _munge_answers():
        started["munged"] = _start_munged()
    conf = root / "slurm.conf"
    for part in ("state", "logs", *(f"spool-{node}" for node in NODES)):
        (root / part).mkdir(parents=True, exist_ok=True)
    conf.write_text(_slurm_conf(root, host))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = SlurmCluster(root, "debug", env, started)
    try:
        subprocess.run(["slurmctld"], env=env, check=True, capture_output=True, timeout=30)
        started["slurmctld"] = _read_pid(root / "slurmctld.pid")
        for node in NODES:
            subprocess.run(["slurmd", "-N", node], env=env, check=True, capture_output=True,
                           timeout=30)
            started[f"slurmd {node}"] = _read_pid(root / f"slurmd-{node}.pid")
        for node in NODES:
            _wait_idle(cluster, node)
    except Exception:
        cluster.stop()
        raise
    return cluster


def _slurm_conf(root: Path, host: str) -> str:
    probe = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True)
    # "NodeName=<host> CPUs=... RealMemory=..." as slurmd sees this machine: each node has it all.
    hardware = probe.stdout.splitlines()[0].split(" UpTime")[0].split(" ", 1)[1]
    ports = {node: _free_port() for node in NODES}
    return "\n".join([
        "ClusterName=llavakit",
        f"SlurmctldHost={host}",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"SlurmctldPort={_free_port()}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool-%n'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd-%n.pid'}",
        f"SlurmctldLogFile={root / 'logs' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'logs' / 'slurmd-%n.log'}",
        "SlurmdParameters=config_overrides",  # two nodes that share this machine's cores
        "AuthType=auth/munge",
        "AuthInfo=cred_expire=10",
        "CredType=cred/munge",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0,sched_interval=2",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={root / 'logs' / 'jobcomp.txt'}",
        "MinJobAge=3600",
        "EnforcePartLimits=ALL",
        "ReturnToService=2",
        "MpiDefault=none",
        "KillWait=5",
        *(f"NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 Port={ports[node]} "
          f"{hardware} State=UNKNOWN" for node in NODES),
        f"PartitionName=debug Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def _make_resolvable(host: str) -> None:
    try:
        socket.gethostbyname(host)
    except OSError:
        with open("/etc/hosts", "a") as hosts:
            hosts.write(f"127.0.0.1 {host}\n")


def _munge_answers() -> bool:
    if not shutil.which("munge"):
        return False
    credential = subprocess.run(["munge", "-n"], capture_output=True)
    if credential.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=credential.stdout, capture_output=True).returncode == 0


def _start_munged() -> int:
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True, capture_output=True)
    deadline = time.monotonic() + 20
    while not _munge_answers():
        if time.monotonic() > deadline:
            raise ClusterUnavailable("munged started but does not answer")
        time.sleep(0.2)
    return _read_pid(run_dir / "munged.pid")


def _read_pid(path: Path) -> int:
    """A daemon's pid, from the file it writes once it is in the background."""
    deadline = time.monotonic() + 20
    while not (path.is_file() and path.read_text().strip()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} was not written")
        time.sleep(0.1)
    return int(path.read_text())


def _wait_idle(cluster: SlurmCluster, node: str) -> None:
    deadline = time.monotonic() + _READY_SECONDS
    state = ""
    while time.monotonic() < deadline:
        state = cluster.command("sinfo", "-h", "-n", node, "-o", "%T", check=False).strip()
        if state == "idle":
            return
        time.sleep(0.5)
    log = cluster.root / "logs" / f"slurmd-{node}.log"
    tail = log.read_text()[-1500:] if log.is_file() else "no slurmd log"
    raise RuntimeError(f"node {node} is {state or 'not reported'} after {_READY_SECONDS}s: {tail}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
