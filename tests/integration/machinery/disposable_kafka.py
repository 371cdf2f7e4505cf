"""A throwaway KRaft cluster for tests that must freeze or kill a broker: the shared 3-broker
cluster serves every other test and the running services, and is never touched.

Two processes, started from the jars `infra/kafka/kafka.sh install` resolved and with the same
server.properties template the shared cluster uses (a few settings appended, which override it;
among them, its listeners are PLAINTEXT without an authorizer: the cluster is private to its test,
which is about a leaderless partition, not about who may connect):
- node 1, controller and broker, with its own cluster id, free ports and a temporary log directory;
- node 2, a broker only.
Node 2 is there so that a partition can be *leaderless*: with a topic whose only replica is on node
2, freezing node 2 (SIGSTOP) makes the controller fence it and report the partition without a
leader, while node 1 keeps answering metadata requests. With a single node, the only broker that
could say "no leader" is the one that is gone, so a client keeps the old leader and retries.
"""

import asyncio
import base64
import signal
import socket
import subprocess
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

REPO = Path(__file__).resolve().parents[3]
LIBS = REPO / ".cache" / "kafka" / "libs"
TEMPLATE = REPO / "infra" / "kafka" / "server.properties.template"
# A small heap, and a JIT that starts fast: these brokers live for one test module.
JVM = ["-Xms128m", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]

# Appended to the template: one replica is enough, and a frozen broker is fenced after 2 s
# instead of 9 s, so the test sees its partitions go leaderless quickly.
SMALL_CLUSTER = """
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
num.partitions=1
broker.session.timeout.ms=2000
broker.heartbeat.interval.ms=250
"""


# No SASL and no authorizer (the template's are for the shared cluster).
PLAINTEXT = """
advertised.listeners=PLAINTEXT://127.0.0.1:{client_port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
authorizer.class.name=
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's own `Uuid.randomUuid`, it never starts with "-": the storage tool's argument
    parser would read such an id as an option (one id in 64 did, and failed a CI run).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def java(*args: str) -> list[str]:
    return [
        "java",
        *JVM,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={REPO / 'infra/kafka/log4j2.yaml'}",
        "-cp",
        f"{LIBS}/*",
        *args,
    ]


@dataclass
class Node:
    node_id: int
    directory: Path
    client_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log(self) -> Path:
        return self.directory / "broker.log"

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing, as a hung broker would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@dataclass
class DisposableKafka:
    directory: Path
    cluster_id: str = field(default_factory=new_cluster_id)
    controller_port: int = field(default_factory=free_port)
    nodes: list[Node] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{node.client_port}" for node in self.nodes)

    def node(self, node_id: int) -> Node:
        return next(node for node in self.nodes if node.node_id == node_id)

    def _write_config(self, node: Node, *, controller: bool) -> None:
        listeners = f"PLAINTEXT://127.0.0.1:{node.client_port}"
        if controller:
            listeners += f",CONTROLLER://127.0.0.1:{self.controller_port}"
        template = TEMPLATE.read_text()
        for name, value in {
            "@NODE_ID@": str(node.node_id),
            "@CLIENT_PORT@": str(node.client_port),
            "@CONTROLLER_PORT@": str(self.controller_port),
            "@VOTERS@": f"1@127.0.0.1:{self.controller_port}",
            "@LOG_DIR@": str(node.directory / "data"),
        }.items():
            template = template.replace(name, value)
        overrides = SMALL_CLUSTER + f"listeners={listeners}\n" + PLAINTEXT.format(client_port=node.client_port)
        if not controller:
            overrides += "process.roles=broker\n"
        node.directory.mkdir(parents=True)
        node.config.write_text(template + overrides)

    def start(self) -> None:
        """Format both nodes' storage and start them (the way `kafka.sh broker` does)."""
        if not (LIBS / ".complete").exists():
            raise RuntimeError(f"the Kafka jars are missing in {LIBS}: run infra/kafka/kafka.sh install")
        for node_id, controller in ((1, True), (2, False)):
            node = Node(node_id, self.directory / f"node-{node_id}", free_port())
            self._write_config(node, controller=controller)
            self.nodes.append(node)
        formats = [
            subprocess.Popen(
                java("kafka.tools.StorageTool", "format", "--cluster-id", self.cluster_id, "--config", str(n.config)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for n in self.nodes
        ]
        for process in formats:
            _, stderr = process.communicate(timeout=60)
            if process.returncode != 0:
                raise RuntimeError(f"formatting storage failed: {stderr.decode(errors='replace')}")
        for node in self.nodes:
            with node.log.open("wb") as log:
                node.process = subprocess.Popen(
                    java("kafka.Kafka", str(node.config)), stdout=log, stderr=subprocess.STDOUT
                )

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                with suppress(ProcessLookupError):
                    node.process.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGKILL's exit
                    node.process.kill()
                node.process.wait(timeout=30)

    async def wait_ready(self, timeout: float = 60) -> None:
        """Both brokers registered: an admin client sees them in the cluster metadata."""
        deadline = time.monotonic() + timeout
        while True:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"node {node.node_id} exited; log:\n{node.log.read_text()[-3000:]}")
            try:
                admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
                await admin.start()
                try:
                    described = await admin.describe_cluster()
                finally:
                    await admin.close()
                if len(described["brokers"]) == len(self.nodes):
                    return
            except (KafkaError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the disposable cluster was not ready after {timeout:g}s")
            await asyncio.sleep(0.5)

    async def create_topic(self, name: str, *, replica_on: int) -> None:
        """A one-partition topic whose only replica is on node `replica_on`."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name, num_partitions=-1, replication_factor=-1, replica_assignments={0: [replica_on]})]
            )
        finally:
            await admin.close()

    async def leader_of(self, topic: str) -> int:
        """The partition's leader as node 1 (the controller's broker) reports it; -1 when it has none.
        Asks node 1 alone: node 2 may be the one that is frozen."""
        client = AIOKafkaClient(bootstrap_servers=f"127.0.0.1:{self.node(1).client_port}", request_timeout_ms=3000)
        try:
            await client.bootstrap()
            response = await client.send(1, MetadataRequest([topic]))
        finally:
            await client.close()
        (described,) = response.to_object()["topics"]
        return described["partitions"][0]["leader"]
