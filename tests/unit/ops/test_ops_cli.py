"""The command line's own refusals, before it touches Kafka or an API."""

from ecommerce_ops.cli import app
from typer.testing import CliRunner


def test_a_redrive_without_saying_which_dead_letters_is_refused_as_wrong_usage() -> None:
    result = CliRunner().invoke(app, ["dlt", "redrive", "--execute"])

    assert result.exit_code == 2
    assert "choose what to redrive: --event-id, --cause or --all" in result.output


def test_every_command_is_reachable_from_the_one_entry_point() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("saga", "dlt", "lag"):
        assert command in result.output
    for group, commands in {"saga": ("trace", "stuck"), "dlt": ("list", "show", "redrive")}.items():
        output = CliRunner().invoke(app, [group, "--help"]).output
        assert all(command in output for command in commands), output


def test_an_unreachable_kafka_is_a_one_line_error_not_a_traceback() -> None:
    result = CliRunner().invoke(app, ["--bootstrap-servers", "127.0.0.1:1", "dlt", "list"])

    assert result.exit_code == 1
    assert "Kafka: KafkaConnectionError" in result.output
    assert "Traceback" not in result.output


def test_an_unreachable_api_is_a_one_line_error_naming_the_address() -> None:
    result = CliRunner().invoke(app, ["--order-url", "http://127.0.0.1:1", "--token", "t", "saga", "stuck"])

    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:1/orders" in result.output
