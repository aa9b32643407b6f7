"""The command line's own words in Vietnamese: help panels and usage errors.

Typer writes its help panels, and the errors of a mistyped command ("No such option",
"Missing option"), in English, and its bundled click has no translation catalogue. Clerks
and principals read Vietnamese, so the panel titles are set here and each usage error is
reworded, from the exception's own fields, just before Typer prints it. Only the wording
changes: the exit code (2) and where the message goes (standard error) stay Typer's.
"""

from __future__ import annotations

from typing import Any

from typer import rich_utils
from typer._click import core as click_core
from typer._click import exceptions as click_errors
from typer._click import formatting as click_formatting

HELP_OPTION_TEXT = "Hiện hướng dẫn này rồi thoát."
USAGE_PREFIX = "Cách dùng: "

_PANEL_TEXTS = {
    "ARGUMENTS_PANEL_TITLE": "Đối số",
    "OPTIONS_PANEL_TITLE": "Tuỳ chọn",
    "COMMANDS_PANEL_TITLE": "Lệnh",
    "ERRORS_PANEL_TITLE": "Lỗi",
    "ABORTED_TEXT": "Đã dừng.",
    "RICH_HELP": "Xem [blue]'{command_path} {help_option}'[/] để biết cách dùng.",
    "REQUIRED_LONG_STRING": "[bắt buộc]",
    "DEFAULT_STRING": "[mặc định: {}]",
    "ENVVAR_STRING": "[biến môi trường: {}]",
    "DEPRECATED_STRING": "(không còn dùng) ",
}


# What a value failed to be (the type checks' English, matched by a phrase), in Vietnamese.
_VALUE_REASONS = (("valid integer", "cần một số nguyên"), ("valid number", "cần một số"),
                  ("valid boolean", "cần true hoặc false"))


def usage_message(exc: click_errors.ClickException) -> str:
    """A usage error in Vietnamese, saying what was wrong and what would be right."""
    ctx = getattr(exc, "ctx", None)
    where = f"«{ctx.command_path}»" if ctx is not None else "này"
    if isinstance(exc, click_errors.NoSuchOption):
        said = f"Lệnh {where} không có tuỳ chọn {exc.option_name}."
        if exc.possibilities:
            said += f" Có phải là {', '.join(sorted(exc.possibilities))}?"
        return said
    if isinstance(exc, click_errors.MissingParameter):
        hint = _hint(exc)
        if exc.param is not None and exc.param.param_type_name == "argument":
            return f"Thiếu đối số {hint} của lệnh {where}."
        return f"Thiếu tuỳ chọn bắt buộc {hint} của lệnh {where}."
    if isinstance(exc, click_errors.BadParameter):
        reason = next((vi for en, vi in _VALUE_REASONS if en in exc.message), exc.message)
        return f"Giá trị không hợp lệ cho {_hint(exc)}: {reason}."
    message = exc.format_message()
    extra = "Got unexpected extra argument(s) ("
    if message.startswith(extra) and message.endswith(")"):
        return f"Lệnh {where} không nhận thêm đối số: {message[len(extra):-1]}."
    if message.startswith("No such command "):
        name = message.removeprefix("No such command ").rstrip(".")
        return f"Không có lệnh {name}."
    if message == "Missing command.":
        return f"Cần chỉ rõ lệnh con của {where}."
    return message


def _hint(exc: click_errors.BadParameter) -> str:
    if exc.param_hint is not None:
        hint = exc.param_hint
        return " / ".join(hint) if not isinstance(hint, str) else hint
    if exc.param is not None:
        return str(exc.param.get_error_hint())
    return "tham số"


_typer_format_error = rich_utils.rich_format_error
_typer_help_option = click_core.Command.get_help_option
_typer_write_usage = click_formatting.HelpFormatter.write_usage


def _format_error(exc: click_errors.ClickException) -> None:
    try:
        vietnamese = usage_message(exc)
    except Exception:  # an error about an error must still be shown: Typer's own words
        _typer_format_error(exc)
        return
    exc.format_message = lambda: vietnamese  # type: ignore[method-assign]
    _typer_format_error(exc)


def _help_option(self: click_core.Command, ctx: click_core.Context) -> Any:
    option = _typer_help_option(self, ctx)
    if option is not None:
        option.help = HELP_OPTION_TEXT
    return option


# The usage line's placeholders, as click spells them.
_USAGE_WORDS = (("[OPTIONS]", "[TUỲ_CHỌN]"), ("COMMAND [ARGS]...", "LỆNH [ĐỐI_SỐ]..."))


def _write_usage(self: click_formatting.HelpFormatter, prog: str, args: str = "",
                 prefix: str | None = None) -> None:
    for english, vietnamese in _USAGE_WORDS:
        args = args.replace(english, vietnamese)
    _typer_write_usage(self, prog, args, USAGE_PREFIX if prefix is None else prefix)


def install() -> None:
    """Put the Vietnamese texts in place (idempotent; called when the CLI is imported)."""
    for name, text in _PANEL_TEXTS.items():
        setattr(rich_utils, name, text)
    rich_utils.rich_format_error = _format_error
    click_core.Command.get_help_option = _help_option  # type: ignore[method-assign]
    click_formatting.HelpFormatter.write_usage = _write_usage  # type: ignore[method-assign]
    highlights = rich_utils.OptionHighlighter.highlights
    if USAGE_PREFIX not in "".join(highlights):  # the prefix styled as Typer styles its own
        highlights.append(f"(?P<usage>{USAGE_PREFIX})")
