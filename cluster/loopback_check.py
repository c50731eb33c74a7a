"""`ray up cluster/onprem.yaml`, `ray submit` and `ray job submit` through `ray dashboard`, on this machine alone.

Needs root, Debian's openssh-server and rsync (`apt-get install -y openssh-server rsync`), and 127.0.0.1:22
free. It starts a private sshd on 127.0.0.1:22 (its own host key, config and authorized key, all in a temp
folder; never ~/.ssh), writes a copy of cluster/onprem.yaml for a head at 127.0.0.1 with no workers, and runs
the launcher against it as root over SSH:

  1. `ray up`       the YAML's file mounts (the repository, filtered by .gitignore; the token), its setup and
                    head start commands, run over SSH;
  2. `ray submit`   cluster/submit_train.py -- train ippo (a tiny run) on the head, joined to the cluster;
  3. `ray dashboard` + `ray job submit`   the same run through the forwarded dashboard (Jobs API).

What differs from the YAML, and why: every SSH session gets HOME=<temp>/home, so that what `ray up` writes in
the head's home (the repository, ~/.bashrc, ~/ray_bootstrap_*) stays in the temp folder; the workstation side
runs with HOME=<temp>/workstation (its ~/.ray/auth_token: the token the YAML copies to the head). The sessions
also get RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (rl_cs/experiment/ray_session.py), so the head listens on
127.0.0.1 only, and RAY_TMPDIR=<temp> (Ray's files, and `ray start`'s address file, apart from any other Ray
here). `ray stop` is left out of the start commands (it would stop every Ray on the machine), the pinned ports
are replaced by free ones, and unless --full-setup the setup's venv and pip installs are replaced by a link to
this checkout's .venv (--full-setup runs them: torch, then `pip install -e`, several minutes and downloads).

Everything is torn down at the end, whatever happened: the head's processes, the tunnel, sshd, the temp folder.
Exit 0 if all three steps worked. Usage: python cluster/loopback_check.py [--full-setup] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from rl_cs.processes import descendants, free_ports

REPO = Path(__file__).resolve().parents[1]
ONPREM = REPO / "cluster" / "onprem.yaml"
SSHD = "/usr/sbin/sshd"
PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port", "--object-manager-port",
              "--node-manager-port", "--runtime-env-agent-port", "--dashboard-agent-grpc-port",
              "--dashboard-agent-listen-port", "--metrics-export-port")


def say(text: str) -> None:
    print(f"[loopback-check] {text}", flush=True)


class Check:
    def __init__(self, full_setup: bool):
        self.full_setup = full_setup
        self.root = Path(tempfile.mkdtemp(prefix="rlcs-ssh-", dir="/tmp"))
        self.home, self.workstation = self.root / "home", self.root / "workstation"
        self.home.mkdir()
        (self.workstation / ".ray").mkdir(parents=True)
        (self.workstation / ".ray" / "auth_token").write_text(secrets.token_hex(32))
        self.name = f"rlcs-loopback-{secrets.token_hex(3)}"
        self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
        self.autoscaler_metrics, self.dashboard_metrics, self.local_dashboard = free_ports(3)
        self.processes: list[subprocess.Popen] = []
        self.made_run_sshd = False
        self.ssh_dirs_before = set(Path("/tmp").glob("ray_ssh_*"))

    # -- sshd -------------------------------------------------------------------------------------------------
    def start_sshd(self) -> None:
        for key in ("client_key", "host_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / key)], check=True)
        (self.root / "authorized_keys").write_text((self.root / "client_key.pub").read_text())
        session_env = {
            "HOME": self.home, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_TMPDIR": self.root,
            "RAY_USAGE_STATS_ENABLED": "0", "AUTOSCALER_METRIC_PORT": self.autoscaler_metrics,
            "DASHBOARD_METRIC_PORT": self.dashboard_metrics}
        (self.root / "sshd_config").write_text("\n".join([
            "Port 22", "ListenAddress 127.0.0.1", f"HostKey {self.root / 'host_key'}",
            f"PidFile {self.root / 'sshd.pid'}", f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "UsePAM no", "StrictModes no", "AllowTcpForwarding local", "X11Forwarding no",
            "SetEnv " + " ".join(f"{key}={value}" for key, value in session_env.items()), ""]))
        if not Path("/run/sshd").exists():
            Path("/run/sshd").mkdir(mode=0o755)
            self.made_run_sshd = True
        log = open(self.root / "sshd.log", "wb")
        self.processes.append(subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        for _ in range(50):
            done = subprocess.run(["ssh", "-i", str(self.root / "client_key"), "-o", "StrictHostKeyChecking=no",
                                   "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
                                   "-o", "BatchMode=yes", "root@127.0.0.1", "echo $HOME"],
                                  capture_output=True, text=True)
            if done.returncode == 0:
                assert done.stdout.strip() == str(self.home), f"SetEnv HOME not applied: {done.stdout!r}"
                say(f"sshd on 127.0.0.1:22 answers; session HOME={done.stdout.strip()}")
                return
            time.sleep(0.2)
        raise RuntimeError(f"sshd did not answer: {done.stderr}\n{(self.root / 'sshd.log').read_text()}")

    # -- the cluster YAML -------------------------------------------------------------------------------------
    def write_yaml(self) -> Path:
        config = yaml.safe_load(ONPREM.read_text())
        config["cluster_name"] = self.name
        config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
        config["auth"] = {"ssh_user": "root", "ssh_private_key": str(self.root / "client_key")}
        config["min_workers"] = config["max_workers"] = 0
        home = "/home/" + yaml.safe_load(ONPREM.read_text())["auth"]["ssh_user"]
        config["file_mounts"] = {remote.replace(home, str(self.home)): local
                                 for remote, local in config["file_mounts"].items()}
        if not self.full_setup:
            config["setup_commands"] = [f"ln -sfn {REPO / '.venv'} ~/rlcs-venv"] + [
                command for command in config["setup_commands"]
                if not command.startswith("python3 -m venv") and "pip install" not in command]

        def local(command: str) -> str:
            for flag, port in self.ports.items():
                command = re.sub(rf"{flag}=\d+", f"{flag}={port}", command)
            return command.replace("$RAY_HEAD_IP:6379", f"$RAY_HEAD_IP:{self.ports['--port']}")

        for kind in ("head_start_ray_commands", "worker_start_ray_commands"):
            config[kind] = [local(command) for command in config[kind] if not command.endswith("ray stop")]
        path = self.root / "onprem-loopback.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        say(f"cluster YAML: {path} (setup: {config['setup_commands']})")
        return path

    # -- the launcher -----------------------------------------------------------------------------------------
    @property
    def env(self) -> dict:
        env = {key: value for key, value in os.environ.items()
               if key != "RAY_ADDRESS" and not key.startswith("RAY_AUTH")}
        env.update(HOME=str(self.workstation), RAY_TMPDIR=str(self.root / "workstation"),
                   RAY_USAGE_STATS_ENABLED="0",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
        return env

    def ray(self, *args: str, timeout: float = 900, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        say("$ ray " + " ".join(args))
        start = time.monotonic()
        done = subprocess.run([str(Path(sys.executable).parent / "ray"), *args], cwd=REPO,
                              env={**self.env, **(extra_env or {})}, capture_output=True, text=True, timeout=timeout)
        (self.root / f"ray-{args[0]}-{time.monotonic_ns()}.log").write_text(done.stdout + done.stderr)
        say(f"  exit {done.returncode} after {time.monotonic() - start:.0f} s")
        return done

    def run(self) -> bool:
        self.start_sshd()
        config = self.write_yaml()
        results = self.home / "results"
        tiny = self.home / "rl-cs" / "tests" / "configs" / "csc_tiny.yaml"
        train = ["train", "ippo", "--world", "csc", "--config", str(tiny), "--set", "experiment.iterations=2",
                 "--results-dir", str(results), "--no-compare"]
        ok = True

        up = self.ray("up", "-y", "--no-config-cache", str(config))
        ok &= self.report("ray up", up, up.returncode == 0 and (self.home / "rl-cs" / "pyproject.toml").exists()
                          and not (self.home / "rl-cs" / ".venv").exists()
                          and (self.home / ".ray" / "auth_token").read_text() ==
                          (self.workstation / ".ray" / "auth_token").read_text())
        if not ok:
            return False
        ok &= self.check_listeners()

        relative = [str(tiny.relative_to(self.home / "rl-cs")) if arg == str(tiny) else arg for arg in train]
        submit = self.ray("submit", "--no-config-cache", str(config), "cluster/submit_train.py", "--", *relative,
                          "--name", "via-ray-submit")  # --config relative to the repository, as in a checkout
        ok &= self.report("ray submit", submit, submit.returncode == 0
                          and (results / "via-ray-submit" / "trials.csv").exists()
                          and "Connecting to existing Ray cluster" in submit.stdout + submit.stderr)

        tunnel = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "dashboard", "--no-config-cache",
                                   "--port", str(self.local_dashboard), "--remote-port",
                                   str(self.ports["--dashboard-port"]), str(config)],
                                  cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        self.processes.append(tunnel)
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.local_dashboard)) == 0:
                    break
            time.sleep(0.3)
        job = self.ray("job", "submit", "--address", f"http://127.0.0.1:{self.local_dashboard}", "--",
                       "rl-cs", *train, "--name", "via-ray-job", extra_env={"RAY_AUTH_MODE": "token"})
        ok &= self.report("ray dashboard + ray job submit", job, job.returncode == 0 and "succeeded" in
                          job.stdout + job.stderr and (results / "via-ray-job" / "trials.csv").exists())
        return ok

    def report(self, what: str, done: subprocess.CompletedProcess, passed: bool) -> bool:
        say(f"{what}: {'OK' if passed else 'FAILED'}")
        if not passed:
            print((done.stdout + done.stderr)[-4000:], flush=True)
        return passed

    def check_listeners(self) -> bool:
        import psutil

        ours = set(self.pids())
        found = [(conn.pid, conn.laddr.ip, conn.laddr.port)
                 for conn in psutil.net_connections("tcp") if conn.status == psutil.CONN_LISTEN and conn.pid in ours]
        exposed = [entry for entry in found if not entry[1].replace("::ffff:", "").startswith("127.")]
        say(f"the head's listening sockets: {len(found)}, beyond loopback: {exposed or 'none'}")
        return bool(found) and not exposed

    # -- teardown ---------------------------------------------------------------------------------------------
    def pids(self) -> list[int]:
        """Every process whose command line or environment names the temp folder (the head's Ray processes,
        started over SSH, carry RAY_TMPDIR=<temp>), but this one."""
        marker, found = str(self.root).encode(), []
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                if marker in (entry / "cmdline").read_bytes() or marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return [pid for pid in found if pid != os.getpid()]

    def close(self, keep: bool) -> None:
        for _ in range(3):
            doomed = set(self.pids()) | {pid for process in self.processes for pid in descendants(process.pid)}
            for process in self.processes:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            for pid in doomed:  # sshd's per-connection children too
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(1)
        for process in self.processes:
            process.wait()
        left = self.pids()
        if self.made_run_sshd:
            shutil.rmtree("/run/sshd", ignore_errors=True)
        for path in set(Path("/tmp").glob("ray_ssh_*")) - self.ssh_dirs_before:
            shutil.rmtree(path, ignore_errors=True)
        if keep:
            say(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        say(f"torn down: sshd and the head stopped ({len(left)} process(es) left: {left}), temp folder "
            f"{'kept' if keep else 'removed'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-setup", action="store_true", help="run the YAML's venv and pip setup commands")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs) afterwards")
    args = parser.parse_args()
    if os.geteuid() != 0 or not Path(SSHD).exists() or not shutil.which("rsync"):
        print("needs root, openssh-server and rsync (apt-get install -y openssh-server rsync)", file=sys.stderr)
        return 2
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 22)) == 0:
            print("127.0.0.1:22 is taken: this check runs its own sshd there", file=sys.stderr)
            return 2
    check = Check(args.full_setup)
    try:
        ok = check.run()
    finally:
        check.close(args.keep)
    say("all three worked" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
