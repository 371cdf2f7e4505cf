"""docker-compose.yml is a valid Compose file with the topology of the local stack, and its monitoring
configuration parses. Reads files only: no Docker, Kafka or Postgres needed.

The local stack is the reference: infra/kafka/server.properties.template and kafka.sh (brokers),
infra/postgres/postgres.sh and init.sql (database), infra/supervisord.conf (processes),
infra/scripts/stack.sh (ports, migrations, topic provisioning).
"""

import configparser
import importlib
import importlib.util
import itertools
import json
import re
import shlex
import tomllib
import xml.etree.ElementTree as ET
from importlib.resources import files
from pathlib import Path, PurePosixPath

import jsonschema
import pytest
import yaml
from shared.kafka.security import admin_password, development_password

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("order", "payment", "inventory")
BROKERS = ("kafka-1", "kafka-2", "kafka-3")
ROLES = ("api", "relay", "worker")
# Where each process serves /metrics: an API on its HTTP port, relays and workers on their own.
METRICS_PORTS = {
    "order": {"api": 8001, "relay": 9111, "worker": 9112},
    "payment": {"api": 8002, "relay": 9121, "worker": 9122},
    "inventory": {"api": 8003, "relay": 9131, "worker": 9132},
}
# Broker settings that name addresses and paths, which differ between the host and containers by
# design; they are checked one by one below. Every other setting must be the same.
ADDRESS_SETTINGS = {
    "node.id",
    "controller.quorum.voters",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "log.dirs",
}


def read(relative: str) -> str:
    return (REPO / relative).read_text()


def load_yaml(relative: str) -> dict:
    return yaml.safe_load(read(relative))


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml("docker-compose.yml")


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def env_name(setting: str) -> str:
    """The apache/kafka image's mapping of a server property to its environment variable: `_` is
    `__`, `-` is `___`, `.` is `_`."""
    return "KAFKA_" + setting.upper().replace("_", "__").replace("-", "___").replace(".", "_")


def server_properties() -> dict[str, str]:
    """The template's settings, its password placeholders filled in as kafka.sh fills them locally
    (the development passwords)."""
    text = read("infra/kafka/server.properties.template")
    for principal in ("broker", "controller"):
        text = text.replace(f"@{principal.upper()}_PASSWORD@", development_password(principal))
    lines = text.splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def kafka_sh(variable: str) -> str:
    """A variable's value (or its default, in `${OVERRIDE:-default}`) as infra/kafka/kafka.sh sets it."""
    match = re.search(rf'^{variable}="?(?:\$\{{\w+:-)?([^"}}\n]*)\}}?"?$', read("infra/kafka/kafka.sh"), re.M)
    assert match, f"{variable} not found in kafka.sh"
    return match.group(1)


def local_client_port(node_id: int) -> int:
    """kafka.sh's client_port(): node N listens on 9090 + 2N (its default port base)."""
    assert "client_port() { echo $((PORT_BASE + 2 * $1)); }" in read("infra/kafka/kafka.sh")
    assert kafka_sh("PORT_BASE") == "9090"
    return 9090 + 2 * node_id


def command_of(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def listeners(value: str) -> dict[str, str]:
    """'PLAINTEXT://kafka-1:19092,EXTERNAL://127.0.0.1:9092' -> {'PLAINTEXT': 'kafka-1:19092', ...}"""
    return dict(entry.split("://", 1) for entry in value.split(","))


def depends_on(service: dict) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def supervisord_conf() -> configparser.RawConfigParser:
    config = configparser.RawConfigParser()
    config.read_string(read("infra/supervisord.conf"))
    return config


def scaled_out_programs() -> set[str]:
    """The second instances `make scale-out` starts (compose: `docker compose up --scale <name>=2`)."""
    return set(supervisord_conf()["group:scale-out"]["programs"].split(","))


BATCH_PRIORITY = "nice -n 10 "  # the pipeline's, locally; compose gives it as cpu_shares
BATCH_CPU_SHARES = 110  # the CFS weight of nice 10 (the default, nice 0, is 1024)


def supervisor_commands() -> dict[str, str]:
    """Program name -> command line (with its priority) of every process of the stack, scaled-out
    instances included."""
    config = supervisord_conf()
    return {
        section.removeprefix("program:"): config[section]["command"]
        for section in config.sections()
        if section.startswith("program:")
    }


def supervisor_programs() -> dict[str, str]:
    """Program name -> command of every process of the stack in infra/supervisord.conf (without the
    scaled-out instances, and without the priority)."""
    return {
        program: command.removeprefix(BATCH_PRIORITY)
        for program, command in supervisor_commands().items()
        if program not in scaled_out_programs()
    }


def monitoring_programs() -> set[str]:
    return set(supervisord_conf()["group:monitoring"]["programs"].split(","))


def cdc_programs() -> set[str]:
    """Kafka Connect, the Debezium relay (RELAY=debezium)."""
    return set(supervisord_conf()["group:cdc"]["programs"].split(","))


# --- the file itself ---------------------------------------------------------------------------


def compose_schema() -> dict:
    # check-jsonschema vendors the Compose specification's schema (`--builtin-schema vendor.compose-spec`).
    return json.loads((files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json").read_text())


def schema_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_compose_file_is_valid_against_the_compose_specification(compose):
    assert schema_errors(compose) == []


def test_the_schema_check_rejects_a_misspelt_service_key(compose):
    broken = {**compose, "services": {**compose["services"], "postgres": {"imagee": "postgres:15"}}}

    assert any("imagee" in error for error in schema_errors(broken))


# --- Kafka: the brokers of kafka.sh and server.properties.template ---------------------------------


def test_there_are_three_brokers_like_the_local_cluster(services):
    assert [name for name in services if name.startswith("kafka-")] == list(BROKERS)
    assert kafka_sh("BROKERS") == str(len(BROKERS))


@pytest.mark.parametrize("broker", BROKERS)
def test_a_broker_runs_the_kafka_version_of_the_local_jars(services, broker):
    assert services[broker]["image"] == f"apache/kafka:{pom_property('kafka.version')}"


@pytest.mark.parametrize("broker", BROKERS)
def test_a_broker_has_every_setting_of_the_local_brokers(services, broker):
    environment = services[broker]["environment"]
    local = {key: value for key, value in server_properties().items() if key not in ADDRESS_SETTINGS}

    assert {key: str(environment.get(env_name(key))) for key in local} == local


@pytest.mark.parametrize("broker", BROKERS)
def test_a_broker_has_the_durability_settings_of_the_design(services, broker):
    environment = services[broker]["environment"]

    assert environment["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert environment["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
    assert environment["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
    assert environment["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    assert environment["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
    assert environment["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
    assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert environment["KAFKA_NUM_PARTITIONS"] == "12"


@pytest.mark.parametrize("broker", BROKERS)
def test_a_broker_is_a_combined_broker_and_controller_in_the_local_cluster(services, broker):
    environment = services[broker]["environment"]

    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert environment["CLUSTER_ID"] == kafka_sh("CLUSTER_ID")
    assert environment["KAFKA_HEAP_OPTS"] == kafka_sh("HEAP")
    assert environment["KAFKA_JVM_PERFORMANCE_OPTS"] == kafka_sh("JVM_OPTS")


def test_the_brokers_have_node_ids_one_to_three_and_one_quorum_of_three_voters(services):
    node_ids = [services[b]["environment"]["KAFKA_NODE_ID"] for b in BROKERS]
    voters = {services[b]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in BROKERS}
    local_voters = [v.split("@")[0] for v in kafka_sh("VOTERS").split(",")]

    assert node_ids == ["1", "2", "3"]
    assert len(voters) == 1, "every broker names the same quorum"
    (quorum,) = voters
    assert quorum == ",".join(f"{n}@kafka-{n}:9093" for n in node_ids)
    assert local_voters == node_ids


@pytest.mark.parametrize("node_id", [1, 2, 3])
def test_a_broker_is_reachable_from_the_host_on_its_local_port_and_from_containers_by_name(services, node_id):
    broker = services[f"kafka-{node_id}"]
    environment = broker["environment"]
    port = local_client_port(node_id)
    bound = listeners(environment["KAFKA_LISTENERS"])
    advertised = listeners(environment["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in environment["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    local_protocols = dict(p.split(":") for p in server_properties()["listener.security.protocol.map"].split(","))

    assert advertised == {"SASL_PLAINTEXT": f"kafka-{node_id}:19092", "EXTERNAL": f"127.0.0.1:{port}"}
    assert bound == {"SASL_PLAINTEXT": ":19092", "CONTROLLER": ":9093", "EXTERNAL": f":{port}"}
    assert broker["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert local_protocols.items() <= protocols.items()
    assert set(protocols) == set(bound)
    assert environment["KAFKA_INTER_BROKER_LISTENER_NAME"] == "SASL_PLAINTEXT"
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}, "every listener authenticates"


@pytest.mark.parametrize("broker", BROKERS)
def test_a_broker_keeps_its_log_in_a_volume_and_reports_health(services, broker):
    log_dir = services[broker]["environment"]["KAFKA_LOG_DIRS"]

    assert any(volume.endswith(f":{log_dir}") for volume in services[broker]["volumes"])
    assert services[broker]["healthcheck"]["test"]


@pytest.mark.parametrize("broker", BROKERS)
def test_a_broker_formats_its_storage_with_the_scram_users_of_the_local_brokers(services, broker):
    script = "infra/kafka/compose-broker.sh"
    compose_users = re.search(r"for principal in ([\w ]+); do", read(script))
    local_users = re.search(r"^SCRAM_PRINCIPALS=\(([\w ]+)\)$", read("infra/kafka/kafka.sh"), re.M)

    assert compose_users and local_users
    assert compose_users.group(1).split() == local_users.group(1).split()
    assert f"./{script}:/opt/ecommerce/compose-broker.sh:ro" in services[broker]["volumes"]
    assert command_of(services[broker]) == ["bash", "/opt/ecommerce/compose-broker.sh"]
    assert "--command-config /tmp/admin.properties" in services[broker]["healthcheck"]["test"][1]


def test_the_kafka_passwords_of_compose_and_the_local_stack_are_the_development_ones():
    """Compose's literal passwords are the defaults of kafka.sh, compose-broker.sh and the settings
    (a changed one in one place only would lock a principal out)."""
    assert 'echo "${!var:-$1-kafka-dev}"' in read("infra/kafka/kafka.sh")
    assert 'echo "${!var:-$1-kafka-dev}"' in read("infra/kafka/compose-broker.sh")
    assert development_password("admin") == "admin-kafka-dev"


# --- Postgres: postgres.sh and init.sql ----------------------------------------------------------


def test_postgres_runs_init_sql_and_listens_on_the_local_port(services):
    postgres = services["postgres"]
    local_port = re.search(r"PGPORT_ECOMMERCE:-(\d+)", read("infra/postgres/postgres.sh")).group(1)

    assert postgres["image"] == "postgres:15"
    assert "./infra/postgres/init.sql:/docker-entrypoint-initdb.d/init.sql:ro" in postgres["volumes"]
    assert postgres["ports"] == [f"127.0.0.1:{local_port}:5432"]
    assert (REPO / "infra/postgres/init.sql").is_file()


def test_postgres_has_the_server_settings_of_the_local_cluster_including_a_logical_wal(services):
    command = command_of(services["postgres"])
    settings = dict(arg.split("=", 1) for flag, arg in itertools.pairwise(command) if flag == "-c")
    conf = re.search(r"<<CONF\n(.*?)\nCONF", read("infra/postgres/postgres.sh"), re.S).group(1)
    local = dict(line.replace(" ", "").split("=", 1) for line in conf.splitlines())
    local.pop("listen_addresses")  # a container listens on its own network, not on the host's loopback

    assert settings["wal_level"] == "logical"
    assert {key: settings.get(key) for key in local} == {key: value.strip("'") for key, value in local.items()}


# --- The services: supervisord.conf and stack.sh -------------------------------------------------


def test_every_process_of_supervisord_conf_is_a_compose_service_with_the_same_command(services):
    programs = supervisor_programs()

    for program, command in programs.items():
        assert program in services, f"{program} runs locally but not in compose"
        # Brokers and Prometheus run their images' own commands, Connect the same script (checked below).
        if not program.startswith("kafka-") and program not in {"prometheus", "connect"}:
            assert command_of(services[program]) == [PurePosixPath(command).name]
    service_processes = {name for name in services if name.rsplit("-", 1)[-1] in ROLES}
    assert service_processes == (
        {p for p in programs if not p.startswith("kafka-")} - monitoring_programs() - cdc_programs()
    )


def test_each_scaled_out_process_is_a_second_instance_of_a_compose_service_that_compose_can_scale(services):
    config = supervisord_conf()
    scaled = scaled_out_programs()

    assert scaled == {f"{svc}-{role}-2" for svc in SERVICES for role in ("relay", "worker")}
    for program in scaled:
        first = program.removesuffix("-2")
        assert config[f"program:{program}"]["command"] == config[f"program:{first}"]["command"]
        # `--scale` refuses a fixed container name or a published host port.
        assert "container_name" not in services[first] and "ports" not in services[first]
        # Its metrics port must differ from the first instance's on the one host of the local stack.
        svc, role = first.split("-")
        assert (
            f'{svc.upper()}_{role.upper()}_METRICS_PORT="{METRICS_PORTS[svc][role] + 2}"'
            in (config[f"program:{program}"]["environment"])
        )


def test_the_pipeline_runs_at_the_batch_priority_and_everything_else_at_the_default_in_both(services):
    pipeline = {*BROKERS, "connect"} | {f"{svc}-{role}" for svc in SERVICES for role in ("relay", "worker")}
    local = supervisor_commands()

    assert {p for p, command in local.items() if command.startswith(BATCH_PRIORITY)} == pipeline | scaled_out_programs()
    assert not [p for p, command in local.items() if "nice" in command.removeprefix(BATCH_PRIORITY)]
    assert {name for name, service in services.items() if service.get("cpu_shares") == BATCH_CPU_SHARES} == pipeline
    assert {name for name, service in services.items() if "cpu_shares" in service} == pipeline


@pytest.mark.parametrize("svc", SERVICES)
def test_an_api_publishes_the_port_of_the_local_stack(services, svc):
    local_ports = dict(re.findall(r"\[(\w+)\]=(\d+)", read("infra/scripts/stack.sh")))

    assert services[f"{svc}-api"]["ports"] == [f"127.0.0.1:{local_ports[svc]}:{local_ports[svc]}"]
    assert int(local_ports[svc]) == METRICS_PORTS[svc]["api"]


@pytest.mark.parametrize("svc", SERVICES)
def test_a_service_connects_as_its_own_role_and_to_the_brokers_by_their_internal_listener(services, svc):
    prefix = svc.upper()
    local = importlib.import_module(f"{svc}_service.settings").Settings()
    internal = {listeners(services[b]["environment"]["KAFKA_ADVERTISED_LISTENERS"])["SASL_PLAINTEXT"] for b in BROKERS}

    for role in ("migrate", *ROLES):
        environment = services[f"{svc}-{role}"]["environment"]
        assert environment[f"{prefix}_DATABASE_URL"] == (
            f"postgresql+asyncpg://{svc}_svc:{svc}_svc@postgres:5432/ecommerce"
        )
        assert set(environment[f"{prefix}_KAFKA_BOOTSTRAP_SERVERS"].split(",")) == internal
        assert (environment[f"{prefix}_KAFKA_USERNAME"], environment[f"{prefix}_KAFKA_PASSWORD"]) == (
            local.kafka_username,
            local.kafka_password,
        )


@pytest.mark.parametrize("svc", SERVICES)
def test_only_the_migrations_hold_the_schema_owners_url_as_stack_sh_runs_them(services, svc):
    prefix = svc.upper()
    init_sql = read("infra/postgres/init.sql")
    settings_module = pytest.importorskip(f"{svc}_service.settings", reason="service settings not written yet")
    local_owner_url = settings_module.Settings().migration_database_url

    assert services[f"{svc}-migrate"]["environment"][f"{prefix}_MIGRATION_DATABASE_URL"] == (
        f"postgresql+asyncpg://{svc}_owner:{svc}_owner@postgres:5432/ecommerce"
    )
    assert local_owner_url.startswith(f"postgresql+asyncpg://{svc}_owner:{svc}_owner@")
    for role in ROLES:
        assert f"{prefix}_MIGRATION_DATABASE_URL" not in services[f"{svc}-{role}"]["environment"]
    schema = settings_module.Settings().db_schema
    assert f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {svc}_owner;" in init_sql
    assert f"GRANT USAGE ON SCHEMA {schema} TO {svc}_svc;" in init_sql


def test_every_port_compose_publishes_is_bound_to_the_hosts_loopback(services):
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}

    assert published, "compose publishes no port"
    assert {
        name: ports for name, ports in published.items() if not all(p.startswith("127.0.0.1:") for p in ports)
    } == {}


@pytest.mark.parametrize("svc", SERVICES)
def test_inside_the_compose_network_a_service_listens_where_its_published_port_and_prometheus_reach_it(services, svc):
    prefix = svc.upper()

    for role in ROLES:
        environment = services[f"{svc}-{role}"]["environment"]
        assert (environment[f"{prefix}_HTTP_HOST"], environment[f"{prefix}_METRICS_HOST"]) == ("0.0.0.0", "0.0.0.0")


@pytest.mark.parametrize("svc", SERVICES)
def test_a_service_starts_after_its_migrations_and_the_topics(services, svc):
    for role in ROLES:
        assert depends_on(services[f"{svc}-{role}"]) == {
            "postgres": "service_healthy",
            "keys": "service_completed_successfully",
            "topics": "service_completed_successfully",
            f"{svc}-migrate": "service_completed_successfully",
        }
        assert services[f"{svc}-{role}"]["restart"] == "unless-stopped"


@pytest.mark.parametrize("svc", SERVICES)
def test_migrations_run_once_like_stack_sh_does_them(services, svc):
    migrate = services[f"{svc}-migrate"]
    local = re.search(
        r'cd "services/\$svc" && "\$REPO/.venv/bin/(alembic)" ([^|]*?) 2>&1', read("infra/scripts/stack.sh")
    )

    assert command_of(migrate) == [local.group(1), *shlex.split(local.group(2))]
    assert PurePosixPath(migrate["working_dir"]).parts[-2:] == ("services", svc)
    assert migrate["restart"] == "no"
    assert depends_on(migrate) == {"postgres": "service_healthy"}


@pytest.mark.parametrize("svc", SERVICES)
def test_a_service_image_is_built_from_the_one_dockerfile_for_its_workspace_package(services, svc):
    package = tomllib.loads(read(f"services/{svc}/pyproject.toml"))["project"]["name"]
    dockerfile = read("Dockerfile")

    for role in ("migrate", *ROLES):
        build = services[f"{svc}-{role}"]["build"]
        assert (build["context"], build.get("dockerfile", "Dockerfile"), build["args"]) == (
            ".",
            "Dockerfile",
            {"SERVICE": svc},
        )
    assert package == f"{svc}-service"
    assert 'uv sync --frozen --no-dev --package "${SERVICE}-service"' in dockerfile
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile


def test_the_topics_are_provisioned_by_the_script_stack_sh_uses_once_the_brokers_are_healthy(services):
    topics = services["topics"]
    script = "infra/scripts/provision_topics.py"
    internal = {listeners(services[b]["environment"]["KAFKA_ADVERTISED_LISTENERS"])["SASL_PLAINTEXT"] for b in BROKERS}

    assert command_of(topics) == ["python", script]
    assert f'"$PY" {script}' in read("infra/scripts/stack.sh")
    assert f"COPY {script} infra/scripts/" in read("Dockerfile")
    assert set(topics["environment"]["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == internal
    assert topics["environment"]["KAFKA_ADMIN_PASSWORD"] == admin_password()  # the admin's, as locally
    # Leaders spread by Kafka in both (KAFKA_TOPIC_LEADER, one leader broker, is an opt-in: docs/numbers.md).
    assert "KAFKA_TOPIC_LEADER" not in topics["environment"] and "KAFKA_TOPIC_LEADER" not in read(
        "infra/scripts/stack.sh"
    )
    assert depends_on(topics) == {broker: "service_healthy" for broker in BROKERS}
    assert topics["restart"] == "no"


# Each service's key file settings: environment variable -> (the file it names, locally and in
# compose, and the processes that read it). Every API verifies bearer tokens; order's API seals
# payment tokens, payment's worker (its executor) opens them.
KEY_SETTINGS = {
    "order": {
        "AUTH_PUBLIC_KEY_FILE": ("auth-signing.pub.pem", ROLES),
        "PAYMENT_TOKEN_PUBLIC_KEY_FILE": ("payment-token.pub", ROLES),
    },
    "payment": {
        "AUTH_PUBLIC_KEY_FILE": ("auth-signing.pub.pem", ROLES),
        "PAYMENT_TOKEN_PRIVATE_KEY_FILE": ("payment-token.key", ("worker",)),
    },
    "inventory": {"AUTH_PUBLIC_KEY_FILE": ("auth-signing.pub.pem", ROLES)},
}


def mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """A service's named volumes: mount point -> (volume, read-only)."""
    found = {}
    for spec in service.get("volumes", []):
        source, target, *mode = spec.split(":")
        found[target] = (source, mode == ["ro"])
    return found


def test_the_keys_are_made_by_the_script_stack_sh_uses_once_before_any_service_starts(services):
    keys = services["keys"]
    script = "infra/scripts/dev_keys.py"

    assert f"python {script} /keys/all" in " ".join(command_of(keys))
    assert f'"$PY" {script} .run/keys' in read("infra/scripts/stack.sh")
    assert f"COPY {script} infra/scripts/" in read("Dockerfile")
    assert keys["restart"] == "no"
    assert {target: volume for target, (volume, _) in mounts(keys).items()} == {
        "/keys/all": "keys",
        "/keys/public": "public-keys",
        "/keys/payment": "payment-key",
    }


def test_only_the_keys_service_mounts_every_private_key_and_only_the_payment_worker_the_sealing_one(services):
    def mounted_by(volume: str) -> set[str]:
        return {name for name, service in services.items() if volume in {v for v, _ in mounts(service).values()}}

    assert mounted_by("keys") == {"keys"}
    assert mounted_by("payment-key") == {"keys", "payment-worker"}


@pytest.mark.parametrize("svc", SERVICES)
def test_a_service_reads_the_key_files_of_the_local_stack_from_read_only_volumes(services, svc):
    settings_module = pytest.importorskip(f"{svc}_service.settings", reason="service settings not written yet")
    local = settings_module.Settings()
    made_by_dev_keys = {name for private, public, _ in dev_keys().PAIRS.values() for name in (private, public)}
    prefix = svc.upper()

    for setting, (file_name, readers) in KEY_SETTINGS[svc].items():
        assert file_name in made_by_dev_keys
        assert Path(getattr(local, setting.lower())) == Path(".run/keys") / file_name  # the local default
        for role in readers:
            service = services[f"{svc}-{role}"]
            path, mounted = PurePosixPath(service["environment"][f"{prefix}_{setting}"]), mounts(service)
            assert path.name == file_name
            assert str(path.parent) in mounted and mounted[str(path.parent)][1], f"{path} not on a read-only mount"
    assert f"{svc}-migrate" not in services or mounts(services[f"{svc}-migrate"]) == {}


def dev_keys():
    spec = importlib.util.spec_from_file_location("dev_keys", REPO / "infra/scripts/dev_keys.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("svc", SERVICES)
def test_a_service_settings_default_to_the_ports_compose_and_prometheus_use(svc):
    settings_module = pytest.importorskip(f"{svc}_service.settings", reason="service settings not written yet")
    fields = settings_module.Settings.model_fields

    assert fields["http_port"].default == METRICS_PORTS[svc]["api"]
    assert fields["relay_metrics_port"].default == METRICS_PORTS[svc]["relay"]
    assert fields["worker_metrics_port"].default == METRICS_PORTS[svc]["worker"]


# --- Monitoring: Prometheus and Grafana -------------------------------------------------------------


def scrape_targets(config: dict) -> dict[str, set[str]]:
    """Job -> its targets as host:port, static or found by DNS (compose's scalable relays and workers)."""
    return {
        job["job_name"]: {target for static in job.get("static_configs", []) for target in static["targets"]}
        | {f"{name}:{dns['port']}" for dns in job.get("dns_sd_configs", []) for name in dns["names"]}
        for job in config["scrape_configs"]
    }


def ports(targets: set[str]) -> set[int]:
    return {int(target.rsplit(":", 1)[1]) for target in targets}


def test_prometheus_in_compose_scrapes_every_process_of_every_service_by_its_name(services):
    targets = scrape_targets(load_yaml("infra/monitoring/prometheus.yml"))

    for role in ROLES:
        assert targets[role] == {f"{svc}-{role}:{METRICS_PORTS[svc][role]}" for svc in SERVICES}
        assert all(target.split(":")[0] in services for target in targets[role])
    assert "./infra/monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]


def test_prometheus_in_compose_has_the_scrape_jobs_and_ports_of_the_local_one_and_scales_by_dns():
    local = scrape_targets(load_yaml("infra/monitoring/prometheus-local.yml"))
    compose = scrape_targets(load_yaml("infra/monitoring/prometheus.yml"))
    jobs = load_yaml("infra/monitoring/prometheus.yml")["scrape_configs"]
    (relays,) = [job for job in jobs if job["job_name"] == "relay"]

    # Locally the second relays and workers (`make scale-out`) have ports of their own, a job of
    # their own; in compose `--scale` runs them under the same name, which DNS resolves to each.
    assert set(local) - {"scale-out"} == set(compose)
    assert {job: ports(targets) for job, targets in local.items() if job in compose} == {
        job: ports(targets) for job, targets in compose.items()
    }
    assert all(dns["type"] == "A" for dns in relays["dns_sd_configs"])


def test_the_local_scale_out_job_scrapes_each_scaled_out_process_on_its_own_port():
    config = supervisord_conf()
    scale_out_ports = {
        int(re.search(r'METRICS_PORT="(\d+)"', config[f"program:{program}"]["environment"]).group(1))
        for program in scaled_out_programs()
    }

    assert ports(scrape_targets(load_yaml("infra/monitoring/prometheus-local.yml"))["scale-out"]) == scale_out_ports


def test_both_prometheus_load_the_same_rules_and_compose_mounts_them_beside_its_configuration(services):
    local = load_yaml("infra/monitoring/prometheus-local.yml")
    compose = load_yaml("infra/monitoring/prometheus.yml")

    assert local["rule_files"] == compose["rule_files"] == ["rules/*.yml"]
    assert "./infra/monitoring/rules:/etc/prometheus/rules:ro" in services["prometheus"]["volumes"]
    assert (REPO / "infra/monitoring/rules/alerts.yml").is_file()
    assert local["global"] == compose["global"]


def test_the_local_prometheus_runs_the_local_configuration_on_the_port_compose_publishes(services):
    command = supervisord_conf()["program:prometheus"]["command"]

    assert "--config.file=%(ENV_REPO)s/infra/monitoring/prometheus-local.yml" in command
    assert "--web.listen-address=127.0.0.1:9090" in command
    assert services["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]


def pom_property(name: str) -> str:
    pom = ET.parse(REPO / "infra/kafka/pom.xml").getroot()
    return pom.find(f"{{http://maven.apache.org/POM/4.0.0}}properties/{{http://maven.apache.org/POM/4.0.0}}{name}").text


@pytest.mark.parametrize("node_id", [1, 2, 3])
def test_a_broker_runs_the_jmx_exporter_agent_of_the_local_brokers_on_the_same_port(services, node_id):
    broker = services[f"kafka-{node_id}"]
    metrics_port = 9200 + node_id
    local_targets = scrape_targets(load_yaml("infra/monitoring/prometheus-local.yml"))["kafka"]
    compose_targets = scrape_targets(load_yaml("infra/monitoring/prometheus.yml"))["kafka"]

    assert kafka_sh("METRICS_PORT_BASE") == "9200"
    assert "metrics_port() { echo $((METRICS_PORT_BASE + $1)); }" in read("infra/kafka/kafka.sh")
    # In the broker's JVM alone (compose-broker.sh), not in KAFKA_OPTS, which the healthcheck's tool reads too.
    agent = (
        "-javaagent:/opt/jmx-exporter/jmx_prometheus_javaagent.jar=$JMX_EXPORTER_PORT:/opt/ecommerce/jmx-exporter.yml"
    )
    assert broker["environment"]["JMX_EXPORTER_PORT"] == str(metrics_port)
    assert f'export KAFKA_OPTS="${{KAFKA_OPTS-}} {agent}"' in read("infra/kafka/compose-broker.sh")
    assert "javaagent" not in broker["environment"]["KAFKA_OPTS"]
    assert "./infra/kafka/jmx-exporter.yml:/opt/ecommerce/jmx-exporter.yml:ro" in broker["volumes"]
    assert "jmx-exporter:/opt/jmx-exporter:ro" in broker["volumes"]
    assert depends_on(broker) == {"jmx-exporter-agent": "service_completed_successfully"}
    assert f"127.0.0.1:{metrics_port}" in local_targets
    assert f"kafka-{node_id}:{metrics_port}" in compose_targets


def test_the_jmx_exporter_agent_of_compose_is_the_version_the_local_brokers_resolve(services):
    agent = services["jmx-exporter-agent"]
    version = pom_property("jmx-exporter.version")

    assert agent["environment"]["AGENT_URL"].endswith(f"/{version}/jmx_prometheus_javaagent-{version}.jar")
    assert agent["environment"]["AGENT_URL"].startswith("https://repo1.maven.org/maven2/io/prometheus/jmx/")
    assert re.fullmatch(r"[0-9a-f]{40}", agent["environment"]["AGENT_SHA1"])
    assert "sha1sum -c" in " ".join(command_of(agent))
    assert agent["restart"] == "no"


def test_the_lag_exporter_runs_as_locally_as_the_monitor_principal_where_prometheus_scrapes_it(services):
    lag_exporter = pytest.importorskip("shared.lag_exporter", reason="the lag exporter is not written yet")
    local = lag_exporter.LagExporterSettings()
    service = services["lag-exporter"]
    environment = service["environment"]
    internal = {listeners(services[b]["environment"]["KAFKA_ADVERTISED_LISTENERS"])["SASL_PLAINTEXT"] for b in BROKERS}

    assert command_of(service) == [PurePosixPath(supervisor_programs()["lag-exporter"]).name] == ["lag-exporter"]
    assert set(environment["LAG_EXPORTER_KAFKA_BOOTSTRAP_SERVERS"].split(",")) == internal
    assert environment["LAG_EXPORTER_KAFKA_PASSWORD"] == local.kafka_password
    assert environment["LAG_EXPORTER_METRICS_HOST"] == "0.0.0.0"
    assert scrape_targets(load_yaml("infra/monitoring/prometheus.yml"))["lag-exporter"] == {
        f"lag-exporter:{local.metrics_port}"
    }
    assert scrape_targets(load_yaml("infra/monitoring/prometheus-local.yml"))["lag-exporter"] == {
        f"127.0.0.1:{local.metrics_port}"
    }


def test_every_service_process_sends_its_traces_to_jaeger_over_otlp(services):
    jaeger = services["jaeger"]

    for svc in SERVICES:
        for role in ROLES:
            environment = services[f"{svc}-{role}"]["environment"]
            assert environment["OTEL_TRACES_EXPORTER"] == "otlp"
            assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert "127.0.0.1:16686:16686" in jaeger["ports"]


def test_prometheus_for_the_local_stack_scrapes_the_same_ports_on_the_loopback():
    local = scrape_targets(load_yaml("infra/monitoring/prometheus-local.yml"))

    for role in ROLES:
        assert local[role] == {f"127.0.0.1:{METRICS_PORTS[svc][role]}" for svc in SERVICES}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(read("infra/monitoring/grafana/dashboards/ecommerce.json"))


def panel_queries(dashboard: dict) -> dict[str, list[str]]:
    return {
        panel["title"]: [target["expr"] for target in panel.get("targets", [])]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
    }


@pytest.mark.parametrize(
    ("panel", "query"),
    [
        ("Outbox backlog", "outbox_unpublished_events"),
        ("Publish rate", "rate(outbox_events_published_total[1m])"),
        ("Consumer outcomes", "sum by (service, outcome) (rate(consumer_events_total[1m]))"),
        (
            "Handler latency p95",
            "histogram_quantile(0.95, sum by (service, event_type, le) (rate(consumer_handle_seconds_bucket",
        ),
        ("HTTP request rate", "rate(http_requests_total[1m])"),
        ("HTTP latency p95", "histogram_quantile(0.95, sum by (service, route, le) (rate(http_request_seconds_bucket"),
        ("Relay leader", "relay_is_leader"),
        ("Alerts firing and pending", "ALERTS"),
        ("Alerts firing", 'ALERTS{alertstate="firing"}'),
        ("Consumer lag (records)", "kafka_consumergroup_lag"),
        ("Consumer lag (seconds)", "kafka_consumergroup_lag_seconds"),
        ("Dead letters (per 5 min)", 'kafka_topic_partition_end_offset{topic=~".+\\\\.DLT"}'),
        ("Oldest unpublished outbox row", "outbox_oldest_unpublished_age_seconds"),
        ("Overdue sagas", "saga_overdue_orders"),
        (
            "HTTP latency p99 by service",
            "histogram_quantile(0.99, sum by (service, le) (rate(http_request_seconds_bucket",
        ),
        ("Under-replicated partitions", "kafka_server_under_replicated_partitions"),
        ("ISR shrinks and expands", "kafka_server_isr_shrinks_total"),
        ("ISR shrinks and expands", "kafka_server_isr_expands_total"),
        ("Controllers and offline partitions", "kafka_controller_active_controller_count"),
        ("Controllers and offline partitions", "kafka_controller_offline_partitions"),
        ("Broker bytes in and out", "kafka_server_bytes_in_total"),
        ("Request total time p99", "kafka_network_request_total_time_ms"),
        ("Replication slot lag", "pg_replication_slot_lag_bytes"),
        ("Replication slots active", "pg_replication_slot_active"),
    ],
)
def test_the_dashboard_has_a_panel_for_each_signal_of_the_system(dashboard, panel, query):
    assert any(query in expr for expr in panel_queries(dashboard)[panel])


PROMQL_KEYWORDS = {"or", "and", "unless", "bool", "offset", "ignoring", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels or ranges)."""
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    names = set(re.findall(r"\b([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr))
    return names - {"up"} - PROMQL_KEYWORDS  # up: Prometheus's own


def exported_metric_names() -> set[str]:
    """What the system exports: the services' metrics (shared.metrics), the lag exporter's, the
    brokers' (the JMX exporter rules' names), and Prometheus's own ALERTS."""
    from prometheus_client import REGISTRY, CollectorRegistry

    importlib.import_module("shared.metrics")  # registers the services' metrics in the default registry
    lag_registry = CollectorRegistry()
    importlib.import_module("shared.lag_exporter").LagGauges(lag_registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    python = {f.name + s for r in (REGISTRY, lag_registry) for f in r.collect() for s in suffixes.get(f.type, ())}
    brokers = {rule["name"] for rule in load_yaml("infra/kafka/jmx-exporter.yml")["rules"]}
    return python | brokers | {"ALERTS"}


def test_every_metric_the_dashboard_queries_is_exported_by_the_system(dashboard):
    queried = {name for exprs in panel_queries(dashboard).values() for expr in exprs for name in metric_names(expr)}

    assert queried, "the dashboard queries no metric"
    assert queried <= exported_metric_names(), queried - exported_metric_names()


def test_the_dashboard_and_its_provisioning_agree_with_compose(services, dashboard):
    datasources = load_yaml("infra/monitoring/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    (provider,) = load_yaml("infra/monitoring/grafana/provisioning/dashboards/dashboards.yml")["providers"]
    (prometheus,) = [d for d in datasources if d["type"] == "prometheus"]
    mounts = dict(volume.split(":")[:2] for volume in services["grafana"]["volumes"])

    assert dashboard["uid"] and dashboard["title"]
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"] if panel["type"] != "row"} == {
        prometheus["uid"]
    }
    assert prometheus["url"] == "http://prometheus:9090" and "prometheus" in services
    assert mounts["./infra/monitoring/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./infra/monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"


# --- The relay: RELAY=builtin|debezium (stack.sh) is COMPOSE_PROFILES=builtin|debezium ----------------

CONNECT_ROOT = PurePosixPath("/opt/ecommerce")  # the repository's layout, for connect.sh's paths
DEBEZIUM_SERVICES = {"connect-jars", "connect-scram", "connect-provision", "cdc-prepare", "connect", "connect-register"}


def connectors_script():
    spec = importlib.util.spec_from_file_location("connectors", REPO / "infra/scripts/connectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def connect_sh(variable: str) -> str:
    """A variable's default in infra/connect/connect.sh (`NAME="${OVERRIDE:-default}"`)."""
    match = re.search(rf'^{variable}="\$\{{(\w+):-([^}}]*)\}}"(?:\s+#.*)?$', read("infra/connect/connect.sh"), re.M)
    assert match, f"{variable} not found in connect.sh"
    return match.group(2)


def test_the_relays_run_under_the_builtin_profile_and_connect_under_the_debezium_one(services):
    profiles = {name: tuple(service.get("profiles", ())) for name, service in services.items()}

    assert {name for name, p in profiles.items() if p == ("builtin",)} == {f"{svc}-relay" for svc in SERVICES}
    assert {name for name, p in profiles.items() if p == ("debezium",)} == DEBEZIUM_SERVICES
    assert {name for name, p in profiles.items() if p and p not in {("builtin",), ("debezium",)}} == set()


def test_plain_docker_compose_up_runs_the_builtin_relay_from_the_env_file():
    env = dict(line.split("=", 1) for line in read(".env").splitlines() if line.strip() and not line.startswith("#"))

    assert env == {"COMPOSE_PROFILES": "builtin"}
    assert 'RELAY="${RELAY:-$(running_mode)}"' in read("infra/scripts/stack.sh")
    assert 'running_mode() { cat "$RELAY_MODE_FILE" 2>/dev/null || echo builtin; }' in read("infra/scripts/stack.sh")


def test_connect_runs_the_local_workers_script_and_template_on_the_port_of_the_local_stack(services):
    connect = services["connect"]
    local = supervisor_programs()["connect"]
    mounts_of = dict(volume.split(":")[:2] for volume in connect["volumes"])

    assert local == "bash %(ENV_REPO)s/infra/connect/connect.sh worker"
    assert command_of(connect) == ["bash", str(CONNECT_ROOT / "infra/connect/connect.sh"), "worker"]
    assert mounts_of["./infra/connect"] == str(CONNECT_ROOT / "infra/connect")  # worker.properties.template
    # connect.sh's jars are under <repo>/.cache/connect: the volume connect-jars resolved them into.
    assert mounts_of["connect-jars"] == str(CONNECT_ROOT / ".cache")
    assert command_of(services["connect-jars"]) == ["bash", str(CONNECT_ROOT / "infra/connect/connect.sh"), "install"]
    assert 'CACHE="$REPO/.cache/connect"' in read("infra/connect/connect.sh")
    port = connect_sh("REST_PORT")
    assert connect["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert connect["depends_on"].keys() == {"connect-jars", "connect-scram", "connect-provision"}


def test_connect_authenticates_as_the_connect_principal_through_the_internal_listeners(services):
    environment = services["connect"]["environment"]
    internal = {listeners(services[b]["environment"]["KAFKA_ADVERTISED_LISTENERS"])["SASL_PLAINTEXT"] for b in BROKERS}
    template = read("infra/connect/worker.properties.template")

    assert set(environment["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == internal
    assert environment["KAFKA_CONNECT_PASSWORD"] == development_password("connect") == connect_sh("PASSWORD")
    assert (environment["CONNECT_REST_HOST"], environment["CONNECT_ADVERTISED_HOST"]) == ("0.0.0.0", "connect")
    assert "listeners=http://@REST_HOST@:@REST_PORT@" in template
    assert 'username="connect" password="@PASSWORD@"' in template
    assert all(
        f"{name}.replication.factor=3" in template for name in ("config.storage", "offset.storage", "status.storage")
    )


def test_the_connect_principal_is_created_only_under_the_debezium_relay_as_locally(services):
    job = services["connect-scram"]

    assert '[ "${RELAY:-builtin}" = debezium ] && SCRAM_PRINCIPALS+=(connect)' in read("infra/kafka/kafka.sh")
    assert "connect" not in re.search(r"for principal in ([\w ]+); do", read("infra/kafka/compose-broker.sh")).group(1)
    assert "--entity-name connect" in read("infra/connect/compose-scram-user.sh")
    assert job["image"] == services["kafka-1"]["image"]
    assert job["environment"]["KAFKA_CONNECT_PASSWORD"] == development_password("connect")
    assert job["environment"]["KAFKA_ADMIN_PASSWORD"] == admin_password()


def test_the_debezium_setup_jobs_run_the_steps_of_stack_sh_with_the_same_files(services):
    stack = read("infra/scripts/stack.sh")
    dockerfile = read("Dockerfile")
    prepare = " ".join(command_of(services["cdc-prepare"]))
    pairs = dict(pair.split(":") for pair in re.search(r"for pair in ([\w: ]+); do", prepare).group(1).split())

    for step in ("provision", "prepare", "register"):
        assert f'"$PY" infra/scripts/connectors.py {step}' in stack
    assert command_of(services["connect-provision"]) == ["python", "infra/scripts/connectors.py", "provision"]
    assert command_of(services["connect-register"]) == ["python", "infra/scripts/connectors.py", "register"]
    assert "COPY infra/scripts/connectors.py infra/scripts/" in dockerfile
    assert "COPY infra/connect/connector.json infra/connect/" in dockerfile
    assert pairs == connectors_script().SCHEMAS
    assert "-v delete_on_insert=on" in prepare  # connectors.py prepare's default
    assert "./infra/connect/outbox_cdc.sql:/opt/ecommerce/outbox_cdc.sql:ro" in services["cdc-prepare"]["volumes"]
    assert depends_on(services["cdc-prepare"]) == {
        f"{svc}-migrate": "service_completed_successfully" for svc in SERVICES
    }


def test_the_connectors_are_registered_with_the_addresses_of_the_compose_network(services):
    environment = services["connect-register"]["environment"]
    script = connectors_script()

    assert environment["CONNECT_REST_URL"] == f"http://connect:{connect_sh('REST_PORT')}"
    assert (environment["CONNECT_DATABASE_HOST"], environment["CONNECT_DATABASE_PORT"]) == ("postgres", "5432")
    assert (script.DB_HOST, script.DB_PORT) == ("127.0.0.1", 5433)  # the local stack's, without them
    assert depends_on(services["connect-register"]) == {
        "connect": "service_started",  # register waits for the REST API itself
        "cdc-prepare": "service_completed_successfully",
    }


def test_the_lag_exporter_knows_the_relay_and_reads_the_slots_as_the_monitor_role(services):
    environment = services["lag-exporter"]["environment"]

    assert environment["LAG_EXPORTER_RELAY"] == "${COMPOSE_PROFILES:-builtin}"
    assert environment["LAG_EXPORTER_DATABASE_URL"] == "postgresql://monitor:monitor@postgres:5432/ecommerce"
    assert depends_on(services["lag-exporter"])["postgres"] == "service_healthy"
    assert 'export LAG_EXPORTER_RELAY="$RELAY"' in read("infra/scripts/stack.sh")
