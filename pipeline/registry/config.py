"""Typed configuration: `clearance.yaml` and `sources/<id>.yaml`, validated by pydantic.

Every problem is reported as ``file: key: problem`` (:class:`ConfigError`), all of them at once,
so a curator can fix a config directory in one pass. Well-formed but ineligible sources (expired,
revoked, lapsed age verification) are *not* errors here: see :mod:`pipeline.registry.eligibility`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from pipeline.registry.licences import PRESETS as LICENCE_PRESETS
from pipeline.registry.licences import effective_allow
from pipeline.registry.optouts import MAX_LIST_BYTES, OptoutListError, parse_optout_list
from pipeline.registry.spdx import LicenceError, normalise_expression

SETTINGS_FILE = "clearance.yaml"
SOURCES_DIR = "sources"

SourceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]
# RFC 9309 product token: letters, '_' and '-'.
ProductToken = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_-]+$")]

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

# --------------------------------------------------------------------------- clearance.yaml

class LicencePolicy(_Strict):
    """``allow`` (SPDX ids/expressions) and ``preset`` (names, see README) are additive."""

    allow: list[str] = Field(default_factory=lambda: ["CC0-1.0", "CC-BY-4.0"])
    preset: list[str] = Field(default_factory=list)

    @field_validator("allow")
    @classmethod
    def _spdx(cls, value: list[str]) -> list[str]:
        return [_spdx_or_raise(item) for item in value]

    @field_validator("preset", mode="before")
    @classmethod
    def _presets(cls, value: Any) -> Any:
        names = [value] if isinstance(value, str) else value
        if isinstance(names, list):
            for name in names:
                if isinstance(name, str) and name not in LICENCE_PRESETS:
                    raise ValueError(
                        f"unknown preset {name!r} (known: {', '.join(LICENCE_PRESETS)})"
                    )
        return names

    @property
    def effective(self) -> tuple[str, ...]:
        """The allow list after expanding the presets: ``allow`` first, then preset ids."""
        return effective_allow(tuple(self.allow), tuple(self.preset))

class AgeVerificationPolicy(_Strict):
    accepted_methods: list[NonEmpty] = Field(min_length=1)
    max_age_days: int = Field(gt=0)

class SignalSwitches(_Strict):
    """Which opt-out checks run. All on by default; a row records which were off.

    robots.txt for our own ``robots_token`` is not a switch: it is always obeyed.
    """

    ai_agents: bool = True
    content_usage: bool = True
    tdmrep: bool = True
    x_robots_tag: bool = True
    meta_robots: bool = True
    ai_txt: bool = True
    xmp: bool = True
    c2pa: bool = True

    def off(self) -> list[str]:
        return [name for name, on in self.model_dump().items() if not on]

class Blocklist(_Strict):
    """One hash list; its lines are parsed and checked by :mod:`pipeline.safety.hashlists`."""

    id: SourceId
    # url-* lists hold hashes of normalised URLs (pipeline.safety.hashlists.normalise_url).
    kind: Literal["sha256", "md5", "sha1", "pdq", "url-sha256", "url-sha1", "url-md5"]
    path: NonEmpty
    threshold: int | None = Field(default=None, ge=0, le=256)

    # Field validators (not model validators) so the problem names the key it is about.
    @field_validator("threshold")
    @classmethod
    def _threshold_only_for_pdq(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("kind", "pdq") != "pdq":
            raise ValueError("threshold is only meaningful for kind 'pdq'")
        return value

class Screening(_Strict):
    """How images are screened against the hash lists."""

    # Also match the 8 rotations/mirrors of each image's PDQ (one reference pass gives all 8:
    # crawler.perceptual.pdq_hash_and_dihedral).
    pdq_dihedral: bool = False

class IncidentReporting(_Strict):
    """Who files hotline reports from the incident records (copied into each record)."""

    reporting_organisation: str | None = None
    contact: str | None = None

class Limits(_Strict):
    max_bytes: int = Field(default=20_000_000, gt=0)
    max_pixels: int = Field(default=50_000_000, gt=0)
    max_pages_per_source: int = Field(default=10_000, gt=0)

class Settings(_Strict):
    user_agent: NonEmpty
    robots_token: ProductToken
    intended_use: NonEmpty
    licences: LicencePolicy = Field(default_factory=LicencePolicy)
    age_verification: AgeVerificationPolicy
    signals: SignalSwitches = Field(default_factory=SignalSwitches)
    exclude_minors: bool = True
    blocklists: list[Blocklist] = Field(default_factory=list)
    screening: Screening = Field(default_factory=Screening)
    limits: Limits = Field(default_factory=Limits)
    incidents: IncidentReporting = Field(default_factory=IncidentReporting)

    @field_validator("blocklists")
    @classmethod
    def _unique_ids(cls, value: list[Blocklist]) -> list[Blocklist]:
        ids = [b.id for b in value]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate blocklist id(s): {', '.join(dupes)}")
        return value

# --------------------------------------------------------------------------- sources/<id>.yaml

class Evidence(_Strict):
    uri: NonEmpty
    sha256: Sha256Hex

class Consent(_Strict):
    id: NonEmpty
    status: Literal["active", "suspended", "revoked"]
    granted_by: NonEmpty
    granted_at: date
    expires_at: date
    uses: list[NonEmpty] = Field(min_length=1)
    evidence: Evidence

    @field_validator("expires_at")
    @classmethod
    def _dates_in_order(cls, value: date, info: ValidationInfo) -> date:
        granted_at = info.data.get("granted_at")
        if granted_at is not None and value <= granted_at:
            raise ValueError("expires_at must be after granted_at")
        return value

class AgeVerification(_Strict):
    id: NonEmpty
    method: NonEmpty
    verified_by: NonEmpty
    verified_at: date
    expires_at: date

    @field_validator("expires_at")
    @classmethod
    def _dates_in_order(cls, value: date, info: ValidationInfo) -> date:
        verified_at = info.data.get("verified_at")
        if verified_at is not None and value <= verified_at:
            raise ValueError("expires_at must be after verified_at")
        return value

class SourceLicence(_Strict):
    default: str | None = None

    @field_validator("default")
    @classmethod
    def _spdx(cls, value: str | None) -> str | None:
        return None if value is None else _spdx_or_raise(value)

class CrawlSettings(_Strict):
    schedule: str | None = None
    max_depth: int = Field(default=6, ge=0, le=100)
    download_delay: float = Field(default=0.0, ge=0, le=3600)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return value

class Optouts(_Strict):
    """Creators of this source who opted out (:mod:`pipeline.registry.optouts`): names here, a
    list file (relative to the config dir) and/or a list URL inside the source's scope."""

    creators: list[NonEmpty] = Field(default_factory=list)
    file: NonEmpty | None = None
    url: NonEmpty | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @property
    def declared(self) -> bool:
        return bool(self.creators or self.file or self.url)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an absolute http(s) URL, got {value!r}")
    if parts.username or parts.password:
        raise ValueError(f"credentials are not allowed in URLs: {value!r}")
    return value

class Source(_Strict):
    id: SourceId
    name: NonEmpty
    start_urls: list[NonEmpty] = Field(min_length=1)
    scope: list[NonEmpty] = Field(min_length=1)
    allow_private_network: bool = False
    consent: Consent
    age_verification: AgeVerification | None = None
    licence: SourceLicence = Field(default_factory=SourceLicence)
    crawl: CrawlSettings = Field(default_factory=CrawlSettings)
    optouts: Optouts = Field(default_factory=Optouts)

    @field_validator("start_urls", "scope")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [_http_url(v) for v in value]

    @field_validator("scope")
    @classmethod
    def _scope_covers_start_urls(cls, value: list[str], info: ValidationInfo) -> list[str]:
        from pipeline.registry.scope import url_in_prefixes

        start_urls = info.data.get("start_urls") or []
        uncovered = [u for u in start_urls if not url_in_prefixes(u, value)]
        if uncovered:
            raise ValueError(f"scope does not cover start URL(s): {', '.join(uncovered)}")
        return value

    @field_validator("optouts")
    @classmethod
    def _optout_url_in_scope(cls, value: Optouts, info: ValidationInfo) -> Optouts:
        from pipeline.registry.scope import url_in_prefixes

        scope = info.data.get("scope")
        if value.url is not None and scope and not url_in_prefixes(value.url, scope):
            raise ValueError(f"url {value.url} is outside the source's scope")
        return value

    @property
    def consent_sha256(self) -> str:
        """Hash of the consent record as it stands (canonical JSON), stored on every row."""
        return _canonical_sha256(self.consent.model_dump(mode="json"))

    @property
    def age_verification_sha256(self) -> str | None:
        if self.age_verification is None:
            return None
        return _canonical_sha256(self.age_verification.model_dump(mode="json"))

def _canonical_sha256(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()

def _spdx_or_raise(value: str) -> str:
    try:
        return normalise_expression(value)
    except LicenceError as exc:
        raise ValueError(str(exc)) from None

# --------------------------------------------------------------------------- loading

@dataclass(frozen=True)
class ConfigProblem:
    file: str
    key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.problem}"

class ConfigError(Exception):
    """One or more malformed config files; ``str()`` is one ``file: key: problem`` per line."""

    def __init__(self, problems: Iterable[ConfigProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

@dataclass
class Config:
    """The validated config directory: settings, sources by id, and the raw file hashes."""

    root: Path
    settings: Settings
    sources: dict[str, Source]
    file_sha256: dict[str, str] = field(default_factory=dict)

    def resolve(self, relative: str) -> Path:
        """Relative paths in configs resolve against the config dir."""
        path = Path(relative)
        return path if path.is_absolute() else self.root / path

    @property
    def sha256(self) -> str:
        """One hash over every config file, for run.json."""
        return _canonical_sha256(self.file_sha256)

# Configs are small documents. A file over MAX_CONFIG_BYTES is refused unread, and aliases may
# expand to at most MAX_ALIAS_NODES nodes in all: a "billion laughs" of nested aliases is a few
# hundred bytes that pydantic and any error message would expand to 9**9 values. A careful
# config needs no aliases at all; a small bound still lets a shared list be reused.
MAX_CONFIG_BYTES = 1024 * 1024
MAX_ALIAS_NODES = 1000
MAX_QUOTED = 200  # characters of config content an error message may quote


class _UniqueKeyLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded = 0
        self._sizes: dict[int, int] = {}
        self._open: set[str] = set()  # anchors of collections still being composed

    def _size(self, node: yaml.Node) -> int:
        """Nodes in ``node`` once every alias inside it is expanded (memoised per node)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._size(k) + self._size(v) for k, v in node.value)
        self._sizes[id(node)] = size
        return size

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if not self.check_event(yaml.AliasEvent):
            anchor = getattr(event, "anchor", None)
            if anchor is None:
                return super().compose_node(parent, index)  # type: ignore[no-any-return]
            self._open.add(anchor)
            try:
                return super().compose_node(parent, index)  # type: ignore[no-any-return]
            finally:
                self._open.discard(anchor)
        if event.anchor in self._open:
            raise yaml.composer.ComposerError(
                None, None, f"alias *{event.anchor} is recursive (it refers to itself)",
                event.start_mark)
        anchored = self.anchors.get(event.anchor)  # type: ignore[attr-defined]
        if anchored is not None:
            self._expanded += self._size(anchored)
            if self._expanded > MAX_ALIAS_NODES:
                raise yaml.composer.ComposerError(
                    None, None,
                    f"aliases expand to more than {MAX_ALIAS_NODES} values; refused "
                    "(a config needs no aliases)", event.start_mark)
        return super().compose_node(parent, index)  # type: ignore[no-any-return]

def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)

_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
# Dates stay strings for pydantic to parse: PyYAML's own timestamp constructor raises a bare
# ValueError on `2026-13-01`, which would escape as a crash instead of a `file: key: problem`.
_UniqueKeyLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str
)

def _display(path: Path, root: Path) -> str:
    try:
        return str(Path(root.name) / path.relative_to(root))
    except ValueError:
        return str(path)

def _read_yaml(path: Path, shown: str, problems: list[ConfigProblem]) -> dict[str, Any] | None:
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            problems.append(ConfigProblem(
                shown, "(file)",
                f"{size} bytes, over the 1 MiB ({MAX_CONFIG_BYTES} bytes) limit for a config file"))
            return None
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(ConfigProblem(shown, "(file)", f"cannot read: {exc.strerror or exc}"))
        return None
    except UnicodeDecodeError:
        problems.append(ConfigProblem(shown, "(file)", "not valid UTF-8"))
        return None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        problems.append(ConfigProblem(shown, where, f"not valid YAML: {_yaml_problem(exc)}"))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(ConfigProblem(shown, "(file)", "expected a mapping at the top level"))
        return None
    return data

def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = str(getattr(exc, "problem", None) or str(exc)).strip()
    return problem if len(problem) <= MAX_QUOTED else problem[:MAX_QUOTED] + "..."

def _pydantic_problems(shown: str, exc: ValidationError) -> list[ConfigProblem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        key = ".".join(part if len(part) <= 40 else part[:40] + "..." for part in loc) \
            if loc else "(file)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if "input" in err and err["type"] not in ("missing", "extra_forbidden"):
            shown_input = repr(err["input"])
            if len(shown_input) <= 80 and "input" not in msg:
                msg = f"{msg} (got {shown_input})"
        out.append(ConfigProblem(shown, key, msg))
    return out

def _check_optout_file(root: Path, shown: str, relative: str) -> list[ConfigProblem]:
    path = Path(relative) if Path(relative).is_absolute() else root / relative
    key = "optouts.file"
    if not path.is_file():
        return [ConfigProblem(shown, key, f"file not found: {path}")]
    if path.stat().st_size > MAX_LIST_BYTES:
        return [ConfigProblem(shown, key, f"{path}: larger than {MAX_LIST_BYTES} bytes")]
    try:
        parse_optout_list(path.read_bytes())
    except OptoutListError as exc:
        return [ConfigProblem(shown, key, f"{path}: {exc}")]
    return []


def load_config(root: str | Path) -> Config:
    """Load and validate a config directory; raise :class:`ConfigError` listing every problem."""
    root = Path(root)
    problems: list[ConfigProblem] = []
    if not root.is_dir():
        raise ConfigError([ConfigProblem(str(root), "(dir)", "config directory not found")])

    file_sha256: dict[str, str] = {}
    settings: Settings | None = None
    settings_path = root / SETTINGS_FILE
    shown = _display(settings_path, root)
    if not settings_path.is_file():
        problems.append(ConfigProblem(shown, "(file)", "missing; run `clearance init`"))
    else:
        file_sha256[SETTINGS_FILE] = hashlib.sha256(settings_path.read_bytes()).hexdigest()
        raw = _read_yaml(settings_path, shown, problems)
        if raw is not None:
            try:
                settings = Settings.model_validate(raw)
            except ValidationError as exc:
                problems.extend(_pydantic_problems(shown, exc))
        if settings is not None:
            for i, bl in enumerate(settings.blocklists):
                path = root / bl.path if not Path(bl.path).is_absolute() else Path(bl.path)
                if not path.is_file():
                    problems.append(
                        ConfigProblem(shown, f"blocklists.{i}.path", f"file not found: {path}")
                    )

    sources: dict[str, Source] = {}
    sources_dir = root / SOURCES_DIR
    if sources_dir.is_dir():
        for path in sorted(sources_dir.iterdir()):
            if path.suffix not in (".yaml", ".yml") or path.name.startswith("."):
                continue
            shown = _display(path, root)
            file_sha256[f"{SOURCES_DIR}/{path.name}"] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
            raw = _read_yaml(path, shown, problems)
            if raw is None:
                continue
            try:
                source = Source.model_validate(raw)
            except ValidationError as exc:
                problems.extend(_pydantic_problems(shown, exc))
                continue
            if source.id != path.stem:
                problems.append(
                    ConfigProblem(
                        shown, "id", f"must equal the file name {path.stem!r}, got {source.id!r}"
                    )
                )
                continue
            if source.optouts.file is not None:
                problems.extend(_check_optout_file(root, shown, source.optouts.file))
            sources[source.id] = source

    if problems:
        raise ConfigError(problems)
    assert settings is not None
    return Config(root=root, settings=settings, sources=sources, file_sha256=file_sha256)
