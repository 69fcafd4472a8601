"""Jinja2 templates that turn a user event into words, escaped per format.

Theory of operation
-------------------
There is one template per ``EventType``, named after it in lower case
(``order_filled.j2``), plus ``_generic.j2`` for anything without one. The
defaults ship in ``tradewire/channels/templates/``; a deployment overrides
any of them by putting a file of the same name in ``override_dir``.

A template is rendered six times, once per output of
:class:`~tradewire.channels.message.RenderedMessage`: the one-line plain
``title`` and the five bodies. Each output has its own Jinja2 environment
whose ``finalize`` hook escapes every ``{{ expression }}`` for that format
(HTML, Telegram HTML, Discord markdown, Slack mrkdwn, or nothing for plain
text), so a template writes ``{{ p.symbol }}`` and never thinks about
escaping, while the template's own literal text and the helpers of ``fmt``
(``fmt.bold(x)``, ``fmt.code(x)``, ``fmt.pre(x)``, ``fmt.nl``) produce the
format's markup. Values are shown exactly: a ``Decimal`` renders as its
decimal text (``45000.10``), never through ``float``.

Template variables: ``p`` (the typed payload from
:func:`~tradewire.wire.payloads.decode_payload`, or a ``dict`` for system
events), ``fields`` (the payload's set fields as ``(name, value)`` pairs),
``event`` (``id``, ``user_id``, ``type``, ``priority``,
``timestamp_ms``), ``raw`` (the payload as text), ``part`` (``"title"`` or
``"body"``) and ``heading`` (whether the body repeats the title: ``False``
for Discord and Slack, whose messages carry the title in their own field).

Rendering never raises: a payload that does not decode renders
``_generic.j2`` with the raw JSON, and a template that fails (a broken
override) falls back to the generic template, then to a fixed message.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import jinja2
import msgspec
from markupsafe import Markup

from tradewire.channels.escaping import (
    escape_discord,
    escape_html,
    escape_slack,
    escape_telegram_html,
)
from tradewire.channels.message import RenderedMessage
from tradewire.delivery.model import Event, Priority
from tradewire.errors import ConfigError
from tradewire.wire import EventType, Rejection
from tradewire.wire.payloads import decode_payload

__all__ = [
    "MAX_RAW_CHARS",
    "TemplateRenderer",
    "event_type_name",
    "format_value",
    "priority_name",
]

log = logging.getLogger(__name__)
_JSON: Final = msgspec.json.Encoder(decimal_format="string")
_ANY: Final = msgspec.json.Decoder(float_hook=Decimal)

MAX_RAW_CHARS: Final = 1_000
"""How much of an undecodable payload the generic message shows."""


def event_type_name(event_type: int) -> str:
    """The seed's name of ``event_type`` (``EVENT_TYPE_<n>`` for an unknown number)."""
    try:
        return EventType(event_type).name
    except ValueError:
        return f"EVENT_TYPE_{event_type}"


def format_value(value: object) -> str:
    """A payload value as text: decimals exactly, ``None`` as empty."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _JSON.encode(value).decode("utf-8", "replace")
    if isinstance(value, msgspec.Raw):  # an unknown payload key, kept verbatim
        try:
            return format_value(_ANY.decode(value))
        except msgspec.DecodeError:
            return bytes(value).decode("utf-8", "replace")
    return str(value)


def _timestamp(ms: object) -> str:
    """Unix milliseconds as ``2026-01-03 12:41:00 UTC`` (empty for 0 or garbage)."""
    if not isinstance(ms, int) or isinstance(ms, bool) or ms <= 0:
        return ""
    try:
        moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class _Format:
    """How one output escapes values and spells the few markup pieces templates use."""

    escape: Callable[[str], str]
    bold: tuple[str, str] = ("", "")
    code: tuple[str, str] = ("", "")
    pre: tuple[str, str] = ("", "")
    newline: str = "\n"
    escape_in_code: bool = True
    """Whether code spans need escaping (Discord shows code verbatim: a backtick ends it)."""


class _Markup:
    """``fmt`` in templates: markup helpers that escape their argument for the format."""

    def __init__(self, spec: _Format) -> None:
        self._spec = spec
        self.nl = Markup(spec.newline)

    def esc(self, value: object) -> Markup:
        """``value`` escaped for the format (already-escaped markup passes through)."""
        if hasattr(value, "__html__"):
            return Markup(value)
        return Markup(self._spec.escape(format_value(value)))

    def bold(self, value: object) -> Markup:
        """``value`` in bold."""
        return self._wrap(self._spec.bold, self.esc(value))

    def code(self, value: object) -> Markup:
        """``value`` as inline code (plain escaped text when it would break the span)."""
        return self._verbatim(self._spec.code, value)

    def pre(self, value: object) -> Markup:
        """``value`` as a preformatted block."""
        return self._verbatim(self._spec.pre, value)

    def field(self, label: object, value: object) -> Markup:
        """A ``Label: value`` line (nothing when the value is empty)."""
        text = format_value(value) if not hasattr(value, "__html__") else str(value)
        if not text:
            return Markup("")
        return Markup("".join((self.bold(f"{label}:"), " ", self.esc(value), self.nl)))

    def when(self, label: object, ms: object) -> Markup:
        """A ``Label: 2026-01-03 12:41:00 UTC`` line for Unix milliseconds (nothing for 0)."""
        moment = _timestamp(ms)
        return self.field(label, moment) if moment else Markup("")

    def _verbatim(self, marks: tuple[str, str], value: object) -> Markup:
        text = format_value(value)
        if self._spec.escape_in_code:
            return self._wrap(marks, Markup(self._spec.escape(text)))
        if "`" in text:  # would close the span early: show it as escaped text instead
            return self.esc(text)
        return self._wrap(marks, Markup(text))

    @staticmethod
    def _wrap(marks: tuple[str, str], inner: Markup) -> Markup:
        # str.join, not "+": Markup + str would HTML-escape the format's own markup.
        return Markup("".join((marks[0], inner, marks[1]))) if inner else inner


def _identity(text: str) -> str:
    return text


_FORMATS: Final[dict[str, _Format]] = {
    "title": _Format(escape=_identity),
    "text": _Format(escape=_identity),
    "html": _Format(
        escape=escape_html,
        bold=("<strong>", "</strong>"),
        code=("<code>", "</code>"),
        pre=("<pre>", "</pre>"),
        newline="<br>\n",
    ),
    "telegram_html": _Format(
        escape=escape_telegram_html,
        bold=("<b>", "</b>"),
        code=("<code>", "</code>"),
        pre=("<pre>", "</pre>"),
    ),
    "discord_markdown": _Format(
        escape=escape_discord,
        bold=("**", "**"),
        code=("`", "`"),
        pre=("```\n", "\n```"),
        escape_in_code=False,
    ),
    "slack_mrkdwn": _Format(
        escape=escape_slack,
        bold=("*", "*"),
        code=("`", "`"),
        pre=("```", "```"),
    ),
}
_HEADING: Final = {"text": True, "html": True, "telegram_html": True}


def _finalizer(spec: _Format) -> Callable[[object], Markup]:
    def finalize(value: object) -> Markup:
        if hasattr(value, "__html__"):
            return Markup(value)
        if isinstance(value, jinja2.Undefined):
            return Markup("")
        return Markup(spec.escape(format_value(value)))

    return finalize


class TemplateRenderer:
    """A :class:`~tradewire.channels.message.Renderer` backed by Jinja2 templates.

    ``override_dir`` holds deployment templates that win over the shipped
    ones, file by file (``order_filled.j2``, ``_base.j2``, ...); a directory
    that does not exist is a :class:`~tradewire.errors.ConfigError`.
    """

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            if not override_dir.is_dir():
                raise ConfigError(
                    f"template override directory {override_dir} does not exist",
                    setting="templates_dir",
                )
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        loaders.append(jinja2.PackageLoader("tradewire.channels", "templates"))
        loader = jinja2.ChoiceLoader(loaders)
        self._environments = {
            name: self._environment(loader, spec) for name, spec in _FORMATS.items()
        }

    @staticmethod
    def _environment(loader: jinja2.BaseLoader, spec: _Format) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=loader,
            autoescape=True,
            finalize=_finalizer(spec),
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.ChainableUndefined,
            auto_reload=False,  # templates are read once; a restart picks up edits
        )
        helpers = _Markup(spec)
        env.globals.update(fmt=helpers, field=helpers.field, when=helpers.when)
        env.filters["ts"] = _timestamp
        env.filters["value"] = format_value
        return env

    def render(self, event: Event) -> RenderedMessage:
        """Render ``event`` in every format; never raises."""
        name = event_type_name(event.event_type)
        payload = decode_payload(event.event_type, event.payload)
        context = self._context(event, name, payload)
        template = "_generic.j2" if isinstance(payload, Rejection) else f"{name.lower()}.j2"
        try:
            return self._render_all(template, context)
        except Exception as exc:  # a broken deployment template must not stop delivery
            log.warning(
                "template failed, using the generic message",
                extra={"template": template, "error": type(exc).__name__},
            )
        try:
            return self._render_all("_generic.j2", context)
        except Exception:
            return _last_resort(name, context["raw"])

    def _render_all(self, template_name: str, context: dict[str, Any]) -> RenderedMessage:
        title_env = self._environments["title"]
        title = " ".join(_load(title_env, template_name).render(context, part="title").split())
        bodies: dict[str, str] = {}
        for fmt in ("text", "html", "telegram_html", "discord_markdown", "slack_mrkdwn"):
            env = self._environments[fmt]
            body = _load(env, template_name).render(
                context, part="body", heading=_HEADING.get(fmt, False)
            )
            bodies[fmt] = body.strip()
        return RenderedMessage(title=title or context["event"]["type"], **bodies)

    @staticmethod
    def _context(event: Event, name: str, payload: object) -> dict[str, Any]:
        raw = event.payload.decode("utf-8", "replace")
        if len(raw) > MAX_RAW_CHARS:
            raw = raw[: MAX_RAW_CHARS - 1] + "…"
        decoded = None if isinstance(payload, Rejection) else payload
        return {
            "p": decoded if decoded is not None else {},
            "fields": _payload_fields(decoded),
            "raw": raw,
            "invalid": payload.message if isinstance(payload, Rejection) else "",
            "event": {
                "id": event.event_id,
                "user_id": event.user_id,
                "type": name,
                "priority": priority_name(event.priority),
                "timestamp_ms": event.timestamp_ms,
            },
        }


def _payload_fields(payload: object) -> list[tuple[str, object]]:
    """The payload's set fields as (name, value), for templates that list them all."""
    if isinstance(payload, dict):
        return sorted(payload.items())
    if isinstance(payload, msgspec.Struct):
        pairs: list[tuple[str, object]] = []
        for name, label, default in _struct_fields(type(payload)):
            value = getattr(payload, name)
            if value != default:
                pairs.append((label, value))
        extras: dict[str, object] = getattr(payload, "extras", {})
        return pairs + sorted(extras.items())
    return []


@functools.cache
def _struct_fields(model: type[msgspec.Struct]) -> tuple[tuple[str, str, object], ...]:
    return tuple(
        (f.name, f.encode_name, f.default)
        for f in msgspec.structs.fields(model)
        if f.name != "extras"
    )


def priority_name(priority: int) -> str:
    """The seed's name of ``priority`` (the number as text if it is not one)."""
    try:
        return Priority(priority).name
    except ValueError:
        return str(priority)


def _load(env: jinja2.Environment, name: str) -> jinja2.Template:
    try:
        return env.get_template(name)
    except jinja2.TemplateNotFound:
        return env.get_template("_generic.j2")


def _last_resort(name: str, raw: str) -> RenderedMessage:
    """The message when even the generic template fails: fixed words, escaped by hand."""
    title = " ".join(f"{name}: {raw}".split())[:200]
    return RenderedMessage(
        title=title,
        text=title,
        html=escape_html(title),
        telegram_html=escape_telegram_html(title),
        discord_markdown=escape_discord(title),
        slack_mrkdwn=escape_slack(title),
    )
