"""IETF AI Preferences (aipref): the ``Content-Usage`` HTTP header and robots.txt rule.

Sources: draft-ietf-aipref-vocab (vocabulary, serialisation, processing) and
draft-ietf-aipref-attach (the header, and the ``Content-Usage: <path> <prefs>`` robots.txt rule).

What is implemented, and why:

* A preference is an RFC 9651 structured-field Dictionary (parsed with ``http_sfv``); a label's
  value counts only if it is the Token ``y`` (allow) or ``n`` (disallow); other values, unknown
  labels and all parameters are ignored (vocab sections 6.4 and 6.5).
* Our use is building datasets for AI training. The current vocabulary (draft -08, September 2026)
  is flat: ``train-ai`` (training generative AI models), ``ai-use`` and ``search``, with no
  hierarchy; ``train-ai`` is the label that governs us. Drafts -01 to -04 defined a hierarchy,
  Automated Processing (``bots``) > AI Training (``train-ai``) > Generative AI Training
  (``train-genai``), where an explicit preference for a category wins and an unstated one inherits
  from its parent. Headers written against those drafts are in the wild, so we also honour them:
  ``train-genai=n`` refuses (we cannot promise the models trained on the dataset are not
  generative), and ``bots`` applies when ``train-ai`` is not stated (``bots=n`` refuses,
  ``bots=y`` allows). ``train-genai=y`` alone permits only generative training, which is not
  all of our use, so it is not read as permission.
* Any ``n`` wins: RFC 9651 keeps only the last value of a repeated key, and the vocabulary's
  combining rule (section 5.1) is "any disallow wins"; we apply the restrictive reading to repeated
  keys inside one field as well, because opt-outs win (DESIGN.md).
* A field that does not parse means "unknown" in the draft; for us unknown is never permission,
  so it refuses with ``error`` set. Fields over :data:`MAX_FIELD_BYTES` are refused unread
  (``http_sfv`` re-slices its input per member, which is quadratic on hostile sizes).

robots.txt rules come from the group that applies to our product token (exact, case-insensitive),
else the ``*`` group, as for Allow/Disallow; ``Content-Usage`` lines before the first
``user-agent`` line belong to no group under RFC 9309 but state the publisher's preference all the
same, so they are kept and apply to every crawler. The rule with the longest matching path wins;
rules of equal length are combined (any ``n`` wins, attach section 3.1). A rule written without a
path applies to all paths, as ``/`` would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from http_sfv import Dictionary, Token

from crawler.signals import ALLOW, DENY, NONE, SignalResult, clip, header_values, unreadable
from crawler.signals.pathmatch import PathPattern, normalise
from crawler.signals.robotsfile import RobotsFile
from pipeline.runs.reasons import CONTENT_USAGE_DISALLOWED

CHECK = "content_usage"
HEADER = "Content-Usage"
TRAIN_AI = "train-ai"
LEGACY_GENAI = "train-genai"  # drafts -01..-04: Generative AI Training, a subset of train-ai
LEGACY_BOTS = "bots"  # drafts -01..-04: Automated Processing, the parent of train-ai
MAX_FIELD_BYTES = 16 * 1024

Members = list[tuple[str, Any]]


class ContentUsageError(ValueError):
    """A Content-Usage value that is not an RFC 9651 Dictionary (or is too long to read)."""


class _RecordingDictionary(Dictionary):
    """A Dictionary that also keeps every member in order, so repeated keys are all seen."""

    def __init__(self) -> None:
        super().__init__()
        self.members: Members = []

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if hasattr(self, "members"):
            self.members.append((key, self.data[key]))


def parse_preferences(value: str | bytes) -> Members:
    """Every ``(label, member)`` of a Content-Usage Dictionary, repeats included, in order.

    Raises :class:`ContentUsageError` when the value is not a Dictionary. An empty value is an
    empty Dictionary (RFC 9651 section 4.2.2).
    """
    raw = value.encode("latin-1", errors="replace") if isinstance(value, str) else bytes(value)
    if len(raw) > MAX_FIELD_BYTES:
        raise ContentUsageError(f"{len(raw)} bytes, over the {MAX_FIELD_BYTES}-byte limit")
    if not raw.strip(b" \t"):
        return []
    parsed = _RecordingDictionary()
    try:
        parsed.parse(raw)
    except ValueError as exc:
        raise ContentUsageError(_first_message(exc)) from None
    return parsed.members


def _first_message(exc: BaseException) -> str:
    """http_sfv wraps its errors in message-less ValueErrors; find the one that says something."""
    seen: BaseException | None = exc
    while seen is not None:
        if str(seen):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return "malformed structured field"


def _votes(members: Members, label: str) -> set[str]:
    votes: set[str] = set()
    for key, member in members:
        value = getattr(member, "value", None)
        if key == label and isinstance(value, Token) and str(value) in ("y", "n"):
            votes.add(str(value))
    return votes


def evaluate(members: Members) -> tuple[str, str]:
    """Our decision from parsed members: ``(ALLOW | DENY | NONE, why)``."""
    train, genai, bots = (_votes(members, label) for label in (TRAIN_AI, LEGACY_GENAI, LEGACY_BOTS))
    if "n" in train:
        return DENY, "train-ai=n: AI training disallowed"
    if "n" in genai:
        return DENY, "train-genai=n (earlier-draft label): generative AI training disallowed"
    if not train and "n" in bots:
        return DENY, "bots=n (earlier-draft parent of train-ai, which is not stated)"
    if "y" in train:
        return ALLOW, "train-ai=y: AI training allowed"
    if not train and "y" in bots:
        return ALLOW, "bots=y (earlier-draft parent of train-ai, which is not stated)"
    return NONE, "no train-ai preference stated"


def _result(decision: str, found: str, detail: str) -> SignalResult:
    reason = CONTENT_USAGE_DISALLOWED if decision == DENY else None
    return SignalResult(CHECK, decision, found=clip(found), reason=reason, detail=detail)


def content_usage_from_header(value: str | bytes | Sequence[str | bytes] | None) -> SignalResult:
    """Decide from the ``Content-Usage`` field line(s) of one response.

    Several field lines are one Dictionary joined with commas (RFC 9651 section 4.2).
    """
    if value is None:
        values: list[str | bytes] = []
    elif isinstance(value, str | bytes):
        values = [value]
    else:
        values = list(value)
    if not values:
        return SignalResult(CHECK, NONE, detail="no Content-Usage header")
    texts = [v.decode("latin-1") if isinstance(v, bytes) else v for v in values]
    joined = ", ".join(t.strip(" \t") for t in texts if t.strip(" \t"))
    try:
        members = parse_preferences(joined)
    except ContentUsageError as exc:
        return unreadable(
            CHECK,
            CONTENT_USAGE_DISALLOWED,
            f"unreadable Content-Usage header (not an RFC 9651 dictionary: {exc}); "
            "an unknown preference is not permission",
            found=clip(joined),
        )
    decision, why = evaluate(members)
    return _result(decision, joined, f"Content-Usage header: {why}")


def content_usage_from_headers(headers: Mapping[Any, Any] | None) -> SignalResult:
    """Decide from a response's headers (any mapping; see :func:`header_values`)."""
    return content_usage_from_header(header_values(headers, HEADER))


def parse_robots_content_usage(
    text: str | bytes | RobotsFile, token: str
) -> list[tuple[str | None, str, str]]:
    """The ``Content-Usage`` rules of a robots.txt that apply to ``token``.

    Returns ``(path or None, preference, raw line)`` for each rule of the group chosen for the
    token (else ``*``), followed by the rules written before any group.
    """
    robots = text if isinstance(text, RobotsFile) else RobotsFile.parse(text)
    _, lines = robots.select(token)
    rules: list[tuple[str | None, str, str]] = []
    for line in (*lines, *robots.toplevel):
        if line.key != "content-usage":
            continue
        value = line.value
        if value.startswith("/"):
            path, _, prefs = value.replace("\t", " ").partition(" ")
            rules.append((path, prefs.strip(), line.raw))
        else:
            rules.append((None, value, line.raw))
    return rules


def content_usage_from_robots(
    rules: Iterable[tuple[str | None, str] | tuple[str | None, str, str]], path: str
) -> SignalResult:
    """Decide for a URL path (with its query, as robots.txt matches) from robots.txt rules.

    ``rules`` are ``(path or None, preference[, raw line])`` as returned by
    :func:`parse_robots_content_usage`.
    """
    target = normalise(path or "/")
    best = -1
    chosen: list[tuple[str, str, str]] = []
    for rule in rules:
        pattern_text = rule[0] or "/"
        prefs = rule[1]
        raw = rule[2] if len(rule) > 2 else f"Content-Usage: {rule[0] or ''} {prefs}".strip()
        pattern = PathPattern.compile(pattern_text)
        if not pattern.matches(target):
            continue
        if pattern.length > best:
            best, chosen = pattern.length, []
        if pattern.length == best:
            chosen.append((pattern_text, prefs, str(raw)))
    if not chosen:
        return SignalResult(CHECK, NONE, detail=f"no robots.txt Content-Usage rule matches {path}")
    found = "\n".join(raw for _, _, raw in chosen)
    members: Members = []
    errors: list[str] = []
    for _, prefs, raw in chosen:
        try:
            members.extend(parse_preferences(prefs))
        except ContentUsageError as exc:
            errors.append(f"{raw!r}: {exc}")
    decision, why = evaluate(members)
    where = f"robots.txt Content-Usage rule for {chosen[0][0]} (matches {path})"
    if decision == DENY:
        return _result(DENY, found, f"{where}: {why}")
    if errors:
        return unreadable(
            CHECK,
            CONTENT_USAGE_DISALLOWED,
            f"{where} is unreadable (not an RFC 9651 dictionary: {'; '.join(errors)}); "
            "an unknown preference is not permission",
            found=clip(found),
        )
    return _result(decision, found, f"{where}: {why}")
