"""C2PA / CAWG training-and-data-mining assertions, read offline with c2pa-python.

Offline, always: the c2pa library would otherwise fetch remote manifests named in an image's XMP,
resolve ``did:web`` identities of CAWG identity assertions (DNS and HTTPS to the signer's
domain) and, if asked, OCSP responses. Every read here goes through one :class:`c2pa.Context`
built from :data:`OFFLINE_SETTINGS`: ``verify.remote_manifest_fetch`` and ``verify.ocsp_fetch``
off, ``core.allowed_network_hosts`` empty (the library's own allow-list for every HTTP request it
makes), redirects off, and identity assertions not decoded (decoding is what resolves DIDs). No
trust list is configured, so none is fetched; signers are reported ``signingCredential.untrusted``.
A manifest stored remotely is fetched by the caller, and only if its URL is inside consent
(DESIGN.md): :func:`remote_manifest_url` names it, ``read_c2pa(..., remote_manifest_bytes=...)``
reads what was fetched.

Decision (DESIGN.md, C2PA 2.x ``c2pa.training-mining`` and CAWG ``cawg.training-mining``): an
entry ``*.ai_training``, ``*.ai_generative_training`` or ``*.data_mining`` whose ``use`` is
``notAllowed``, or ``constrained`` without ``constraint_info``, refuses, whether or not the
signature validates (an opt-out needs no proof; the validation state and failure codes are
recorded in ``detail``). ``*.ai_inference`` is about using a model, not training one, so it is
recorded but decides nothing. All manifests in the store are read, not only the active one: an
ingredient's opt-out travels with the pixels derived from it. ``allowed`` on a training key
(and no refusal anywhere) allows; ``constrained`` with information is recorded, not permission.

Failure modes: no manifest -> nothing declared. JUMBF present but unreadable (truncated,
corrupt) -> refuse with ``error``. A container the library cannot parse and that holds no C2PA
JUMBF (a truncated plain JPEG, an unsupported format) declares nothing; the image stage judges
the bytes themselves.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import c2pa

from crawler.signals import ALLOW, DENY, NONE, SignalResult, clip, unreadable
from crawler.signals.xmp import XmpError, read_xmp
from pipeline.runs.reasons import C2PA_TRAINING_NOT_ALLOWED

CHECK = "c2pa"

OFFLINE_SETTINGS: dict[str, Any] = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "core": {
        "allowed_network_hosts": [],
        "allow_redirects": False,
        "decode_identity_assertions": False,
    },
}

TRAINING_LABELS = ("c2pa.training-mining", "cawg.training-mining")
REFUSING_KEYS = frozenset({"ai_training", "ai_generative_training", "data_mining"})
_LABEL = re.compile(r"^((?:c2pa|cawg)\.training-mining)(?:\.v\d+)?(?:__\d+)?$")
_JUMBF_C2PA = b"jumdc2pa"  # description box of a C2PA manifest store (UUID starts "c2pa")

_context_lock = threading.Lock()
_context: tuple[int, c2pa.Context] | None = None


def offline_context() -> c2pa.Context:
    """The process's offline :class:`c2pa.Context` (rebuilt after a fork: native handles are
    not valid in a child process)."""
    global _context
    pid = os.getpid()
    with _context_lock:
        if _context is None or _context[0] != pid:
            settings = c2pa.Settings.from_dict(OFFLINE_SETTINGS)
            try:
                _context = (pid, c2pa.Context(settings=settings))
            finally:
                settings.close()
        return _context[1]


offline_context()  # fail at import, not mid-crawl, if the library rejects these settings


@dataclass(frozen=True)
class TrainingEntry:
    manifest: str  # manifest label
    active: bool  # in the active manifest (else an ingredient's)
    assertion: str  # c2pa.training-mining or cawg.training-mining (as labelled)
    key: str  # e.g. cawg.ai_generative_training
    use: str  # allowed | notAllowed | constrained (or whatever was written)
    constraint_info: str | None = None

    @property
    def governs_training(self) -> bool:
        return self.key.rsplit(".", 1)[-1] in REFUSING_KEYS

    @property
    def refuses(self) -> bool:
        return self.governs_training and (
            self.use == "notAllowed" or (self.use == "constrained" and not self.constraint_info)
        )

    def describe(self) -> str:
        info = f" ({self.constraint_info})" if self.constraint_info else ""
        return f"{self.assertion}: {self.key}={self.use}{info}"


@dataclass(frozen=True)
class C2paInfo:
    present: bool  # a manifest store was read
    active_manifest: str | None = None
    manifests: tuple[str, ...] = ()
    validation_state: str | None = None  # Valid | Invalid | Trusted
    validation_codes: tuple[str, ...] = ()  # failure codes from validation_status
    entries: tuple[TrainingEntry, ...] = ()
    malformed: tuple[str, ...] = ()  # training assertions that could not be read
    remote_url: str | None = None  # XMP dcterms:provenance naming a remote manifest
    remote_read: bool = False  # the store was read from remote_manifest_bytes
    error: str | None = None  # set when C2PA data is present but unreadable
    note: str | None = None
    # The store as read (JSON), for the licence stage: one native read per image.
    store: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def failed(cls, message: str, remote_url: str | None = None) -> C2paInfo:
        """For a caller whose fetch of a remote manifest failed (5xx, timeout): unreadable."""
        return cls(present=False, remote_url=remote_url, error=message)


def remote_manifest_url(data: bytes) -> str | None:
    """The remote manifest URL an image's XMP names (``dcterms:provenance``), if any.

    ``self#jumbf=...`` values point inside the file and are not remote. Unreadable XMP gives
    None here; the XMP check reports it.
    """
    try:
        info = read_xmp(data)
    except XmpError:
        return None
    if info is None:
        return None
    for value in info.provenance:
        if value.lower().startswith(("https://", "http://")):
            return value
    return None


def has_c2pa_jumbf(data: bytes) -> bool:
    """Whether the bytes hold a C2PA manifest store's JUMBF description box."""
    return _JUMBF_C2PA in data


def _entries(store: dict[str, Any]) -> tuple[list[TrainingEntry], list[str]]:
    active = store.get("active_manifest")
    entries: list[TrainingEntry] = []
    malformed: list[str] = []
    manifests = store.get("manifests") or {}
    for label, manifest in manifests.items():
        for assertion in (manifest or {}).get("assertions") or []:
            name = str(assertion.get("label", ""))
            if not _LABEL.match(name):
                continue
            data = assertion.get("data")
            table = data.get("entries") if isinstance(data, dict) else None
            if not isinstance(table, dict):
                malformed.append(f"{label}: {name} has no 'entries' object")
                continue
            for key, value in table.items():
                if not isinstance(value, dict) or not isinstance(value.get("use"), str):
                    malformed.append(f"{label}: {name} entry {key} has no 'use'")
                    continue
                info = value.get("constraint_info")
                entries.append(
                    TrainingEntry(
                        manifest=label,
                        active=label == active,
                        assertion=name,
                        key=str(key),
                        use=value["use"],
                        constraint_info=str(info) if info not in (None, "") else None,
                    )
                )
    return entries, malformed


def _read_store(data: bytes, mime: str | None, manifest: bytes | None) -> tuple[dict, str | None]:
    stream = io.BytesIO(data)
    with c2pa.Reader(mime, stream, manifest, context=offline_context()) as reader:
        store = json.loads(reader.json())
        return store, reader.get_validation_state()


def read_c2pa(
    data: bytes, mime: str | None, remote_manifest_bytes: bytes | None = None
) -> C2paInfo:
    """Read the C2PA manifest store of an image, offline; never raises on bad input."""
    media = (mime or "").split(";", 1)[0].strip().lower() or None
    remote = remote_manifest_url(data)
    try:
        store, state = _read_store(data, media, remote_manifest_bytes)
    except c2pa.C2paError.ManifestNotFound as exc:
        if has_c2pa_jumbf(data):
            return C2paInfo(
                False, remote_url=remote, error=f"C2PA JUMBF present but unreadable: {exc}"
            )
        return C2paInfo(False, remote_url=remote, note="no C2PA manifest")
    except c2pa.C2paError as exc:
        message = str(exc)
        if remote_manifest_bytes is not None or has_c2pa_jumbf(data):
            return C2paInfo(False, remote_url=remote, error=f"c2pa: {message}")
        if remote and (
            message.startswith("Remote") or isinstance(exc, c2pa.C2paError.RemoteManifest)
        ):
            return C2paInfo(False, remote_url=remote, note="manifest is remote and was not fetched")
        return C2paInfo(
            False,
            remote_url=remote,
            note=f"no C2PA JUMBF found; the container was not parsed by c2pa ({message})",
        )
    except (ValueError, TypeError, OSError) as exc:  # json, or the binding's own checks
        return C2paInfo(False, remote_url=remote, error=f"{type(exc).__name__}: {exc}")
    entries, malformed = _entries(store)
    codes = tuple(
        dict.fromkeys(
            str(status.get("code"))
            for status in store.get("validation_status") or []
            if isinstance(status, dict) and status.get("code")
        )
    )
    return C2paInfo(
        present=True,
        active_manifest=store.get("active_manifest"),
        manifests=tuple(store.get("manifests") or {}),
        validation_state=state,
        validation_codes=codes,
        entries=tuple(entries),
        malformed=tuple(malformed),
        remote_url=remote,
        remote_read=remote_manifest_bytes is not None,
        store=store,
    )


def _validation(info: C2paInfo) -> str:
    codes = f" ({', '.join(info.validation_codes)})" if info.validation_codes else ""
    source = "remote manifest" if info.remote_read else "manifest"
    return f"{source} validation {info.validation_state or 'unknown'}{codes}"


def c2pa_signals(info: C2paInfo) -> list[SignalResult]:
    """``[result]`` with check ``"c2pa"`` for one image's manifest store."""
    if info.error:
        return [
            unreadable(
                CHECK,
                C2PA_TRAINING_NOT_ALLOWED,
                f"unreadable C2PA manifest: {info.error}",
                found=info.remote_url,
            )
        ]
    if not info.present:
        if info.remote_url:
            return [
                SignalResult(
                    CHECK,
                    NONE,
                    found=info.remote_url,
                    detail=f"C2PA manifest is stored remotely at {info.remote_url} and was not "
                    "read (fetched only if the URL is inside consent)",
                )
            ]
        return [SignalResult(CHECK, NONE, detail=info.note or "no C2PA manifest")]
    validation = _validation(info)
    refusing = [e for e in info.entries if e.refuses]
    if refusing:
        where = sorted(
            {"active manifest" if e.active else f"ingredient {e.manifest}" for e in refusing}
        )
        found = "; ".join(e.describe() for e in refusing)
        return [
            SignalResult(
                CHECK,
                DENY,
                found=clip(found),
                reason=C2PA_TRAINING_NOT_ALLOWED,
                detail=f"training/mining not allowed in {', '.join(where)}; {validation}; "
                "an opt-out is honoured whether or not the signature validates",
            )
        ]
    training = [e for e in info.entries if e.governs_training]
    unknown = [e for e in training if e.use not in ("allowed", "constrained")]
    if info.malformed or unknown:
        problems = list(info.malformed) + [f"unknown use {e.describe()}" for e in unknown]
        return [
            unreadable(
                CHECK,
                C2PA_TRAINING_NOT_ALLOWED,
                f"unreadable training-mining assertion: {'; '.join(problems)}; {validation}",
                found=clip("; ".join(e.describe() for e in info.entries) or None),
            )
        ]
    recorded = "; ".join(e.describe() for e in info.entries) or None
    if any(e.use == "allowed" for e in training) and all(e.use == "allowed" for e in training):
        return [
            SignalResult(
                CHECK,
                ALLOW,
                found=clip(recorded),
                detail=f"training/mining allowed; {validation}",
            )
        ]
    if training:
        detail = f"training/mining constrained with information (not permission); {validation}"
    elif info.entries:
        detail = f"training-mining assertion says nothing about training; {validation}"
    else:
        detail = f"no training-mining assertion; {validation}"
    return [SignalResult(CHECK, NONE, found=clip(recorded), detail=detail)]
