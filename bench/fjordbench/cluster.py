"""Agents and the moto S3 server as child processes, and what ``/proc`` and the
agents' ``--stats-file`` say about them.

Every agent gets its own data directory (WAL, logs) and Kafka port; all share one
SQLite metadata file and one bucket, as agents on one host do.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, process, timeout_s, what, log_path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start-up ({process.returncode}); see {log_path}:\n{_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s} s; see {log_path}")


def _tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def process_cpu_seconds(pid):
    """User + system CPU seconds of a live process (all its threads), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields after the command: state is index 0, utime 11, stime 12.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_memory(pid):
    """(current RSS bytes, peak RSS bytes) of a live process, or (None, None)."""
    current = peak = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    current = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
    except OSError:
        pass
    return current, peak


def machine_cpu():
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def load_average():
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


class MotoServer:
    """``python3 -m moto.server`` on a free port, with one bucket."""

    def __init__(self, run_dir, bucket="fjord-bench"):
        self.port = free_port()
        self.bucket = bucket
        self.log_path = os.path.join(run_dir, "moto.log")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.process, 60, "the moto S3 server", self.log_path)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request("PUT", f"/{bucket}")
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"creating bucket {bucket} on moto answered HTTP {response.status}")

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def environment(self):
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "fjord-bench",
            "AWS_SECRET_ACCESS_KEY": "fjord-bench",
            "AWS_REGION": "us-east-1",
        }

    def cpu_seconds(self):
        return process_cpu_seconds(self.process.pid)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class Agent:
    """One ``fjord agent`` child process."""

    def __init__(self, binary, run_dir, index, metadata_url, storage_url, env, options):
        self.binary = binary
        self.index = index
        self.data_dir = os.path.join(run_dir, f"agent-{index}")
        os.makedirs(self.data_dir, exist_ok=True)
        self.metadata_url = metadata_url
        self.storage_url = storage_url
        self.env = dict(os.environ, **env)
        self.env.setdefault("RUST_LOG", "warn")
        self.options = options
        self.stats_path = os.path.join(self.data_dir, "stats.json")
        self.process = None
        self.port = None
        self.generation = 0
        self.exit_rusage = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.port = free_port()
        self.http_port = free_port()
        self.generation += 1
        log_path = os.path.join(self.data_dir, f"agent-{self.generation}.log")
        if os.path.exists(self.stats_path):
            os.remove(self.stats_path)
        options = self.options
        command = [
            self.binary,
            "agent",
            "--data-dir",
            self.data_dir,
            "--metadata-url",
            self.metadata_url,
            "--storage-url",
            self.storage_url,
            "--kafka-listen",
            self.address,
            "--http-listen",
            f"127.0.0.1:{self.http_port}",
            "--flush-interval-ms",
            str(options["flush_interval_ms"]),
            "--num-partitions",
            str(options["partitions"]),
            "--storage-latency-profile",
            options["latency_profile"],
            "--storage-latency-seed",
            str(1000 * self.index + self.generation),
            "--stats-file",
            self.stats_path,
            "--stats-interval-ms",
            "200",
            "--hedge-put-after-ms",
            str(options.get("hedge_put_after_ms", 0)),
            "--hedge-get-after-ms",
            str(options.get("hedge_get_after_ms", 0)),
            *options.get("extra_args", []),
        ]
        self._log = open(log_path, "w")
        self.log_path = log_path
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        wait_for_port(self.port, self.process, 60, f"agent {self.index}", log_path)
        self.exit_rusage = None

    def cpu_seconds(self):
        return process_cpu_seconds(self.process.pid)

    def memory(self):
        return process_memory(self.process.pid)

    def stats(self):
        """The object-store counters the agent last wrote (cumulative since start)."""
        for _ in range(50):
            try:
                with open(self.stats_path) as f:
                    return json.load(f)["object_store"]
            except (OSError, ValueError):
                time.sleep(0.05)
        raise RuntimeError(f"agent {self.index} wrote no stats file at {self.stats_path}")

    def fresh_stats(self):
        """Counters written after this call (waits for the next rewrite)."""
        try:
            before = os.stat(self.stats_path).st_mtime_ns
        except OSError:
            before = 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if os.stat(self.stats_path).st_mtime_ns != before:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        return self.stats()

    def stop(self):
        """SIGTERM (the agent flushes and writes its final stats), then reap it and
        keep its lifetime rusage (CPU seconds, peak RSS)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                pid, status, rusage = os.wait4(self.process.pid, os.WNOHANG)
                if pid:
                    self.process.returncode = os.waitstatus_to_exitcode(status)
                    self.exit_rusage = {
                        "cpu_seconds": rusage.ru_utime + rusage.ru_stime,
                        "peak_rss_bytes": rusage.ru_maxrss * 1024,
                    }
                    break
                time.sleep(0.05)
            else:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log_tail(self):
        return _tail(self.log_path)


class Cluster:
    """N agents over one SQLite metadata file and one bucket (a local directory or
    a bucket on a moto server)."""

    def __init__(self, binary, run_dir, agents, bucket, options):
        self.run_dir = run_dir
        self.moto = None
        env = {}
        if bucket == "dir":
            storage_url = "file://" + os.path.join(run_dir, "bucket")
        elif bucket == "moto":
            self.moto = MotoServer(run_dir)
            env = self.moto.environment()
            storage_url = f"s3://{self.moto.bucket}/fjord"
        else:
            raise ValueError(f"unknown bucket kind {bucket!r}")
        metadata_url = "sqlite://" + os.path.join(run_dir, "metadata.db")
        self.agents = [Agent(binary, run_dir, i, metadata_url, storage_url, env, options) for i in range(agents)]

    def start(self):
        # One at a time: the first creates the SQLite schema.
        for agent in self.agents:
            agent.start()

    def restart(self):
        for agent in self.agents:
            agent.stop()
        self.start()

    def stop(self):
        for agent in self.agents:
            agent.stop()
        if self.moto is not None:
            self.moto.stop()

    def pids(self):
        return [agent.process.pid for agent in self.agents]

    def sample(self):
        """CPU seconds and object-store counters of every agent, and the bucket
        server's CPU, now."""
        return {
            "agents_cpu_seconds": [agent.cpu_seconds() for agent in self.agents],
            "agents_stats": [agent.fresh_stats() for agent in self.agents],
            "bucket_server_cpu_seconds": self.moto.cpu_seconds() if self.moto else 0.0,
        }

    def peak_rss_bytes(self):
        return [agent.memory()[1] for agent in self.agents]
