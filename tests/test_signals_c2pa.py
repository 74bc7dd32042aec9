"""C2PA / CAWG training-mining, read offline (crawler.signals.c2pa_manifest)."""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import c2pa
import pytest
from PIL import Image

from crawler.signals import ALLOW, DENY, NONE
from crawler.signals.c2pa_manifest import (
    CHECK,
    OFFLINE_SETTINGS,
    C2paInfo,
    c2pa_signals,
    has_c2pa_jumbf,
    read_c2pa,
    remote_manifest_url,
)
from pipeline.runs.reasons import ALL, C2PA_TRAINING_NOT_ALLOWED

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO.parent / "shared" / "fixtures" / "images"


def fixture(*parts: str) -> bytes:
    path = IMAGES.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/fixtures not checked out)")
    return path.read_bytes()


def decide(data: bytes, **kwargs: bytes) -> tuple[C2paInfo, object]:
    info = read_c2pa(data, "image/jpeg", **kwargs)
    [result] = c2pa_signals(info)
    assert result.check == CHECK
    return info, result


def jpeg_store(jpeg: bytes) -> bytes:
    """The C2PA manifest store (JUMBF) carried in a JPEG's APP11 segments, reassembled."""
    pos, store, first = 2, bytearray(), True
    while pos + 4 <= len(jpeg) and jpeg[pos + 1] != 0xDA:
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        segment = jpeg[pos + 4 : pos + 2 + length]
        if jpeg[pos + 1] == 0xEB and segment[:2] == b"JP":
            body = segment[8:]  # CI "JP", En, Z
            store += body if first else body[8:]  # continuations repeat LBox and TBox
            first = False
        pos += 2 + length
    return bytes(store)


def plain_jpeg(xmp: bytes | None = None) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 200)).save(out, "JPEG")
    data = out.getvalue()
    if xmp is None:
        return data
    segment = b"http://ns.adobe.com/xap/1.0/\x00" + xmp
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + data[2:]


def provenance_xmp(url: str) -> bytes:
    return (
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF "
        "xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description rdf:about='' "
        f"xmlns:dcterms='http://purl.org/dc/terms/' dcterms:provenance='{url}'/>"
        "</rdf:RDF></x:xmpmeta>"
    ).encode()


# --------------------------------------------------------------------------- real fixtures


def test_c2pa_c_cawg_data_generative_training_not_allowed_refuses() -> None:
    info, result = decide(fixture("c2pa", "c2pa-c_C_with_CAWG_data.jpg"))
    assert info.present
    assert {e.assertion for e in info.entries} == {"c2pa.training-mining", "cawg.training-mining"}
    assert result.decision == DENY
    assert result.reason == C2PA_TRAINING_NOT_ALLOWED and result.reason in ALL
    assert not result.error
    found = result.found or ""
    assert "cawg.ai_generative_training=notAllowed" in found
    assert "c2pa.ai_generative_training=notAllowed" in found
    assert "ai_inference" not in found  # inference is not one of the refusing keys
    # Signature state is recorded, and does not matter for an opt-out.
    assert info.validation_state == "Invalid"
    assert "signingCredential.expired" in info.validation_codes
    assert "Invalid" in (result.detail or "") and "signingCredential.expired" in (
        result.detail or ""
    )


def test_inference_alone_decides_nothing() -> None:
    info = read_c2pa(fixture("c2pa", "c2pa-c_C_with_CAWG_data.jpg"), "image/jpeg")
    only_inference = C2paInfo(
        present=True,
        validation_state="Valid",
        entries=tuple(e for e in info.entries if e.key.endswith("ai_inference")),
    )
    assert [e.use for e in only_inference.entries] == ["notAllowed", "notAllowed"]
    assert c2pa_signals(only_inference)[0].decision == NONE


def test_c2pa_c_for_trusted_read_all_cawg_keys_not_allowed() -> None:
    info, result = decide(fixture("c2pa", "c2pa-c_for_trusted_read.jpg"))
    assert {e.key for e in info.entries} == {
        "cawg.ai_training",
        "cawg.ai_generative_training",
        "cawg.ai_inference",
        "cawg.data_mining",
    }
    assert result.decision == DENY
    assert info.validation_state == "Valid"
    assert "active manifest" in (result.detail or "")


def test_adobe_connected_identities_allowed() -> None:
    info, result = decide(fixture("c2pa", "c2pa-rs_adobe_connected_identities.jpg"))
    assert result.decision == ALLOW
    assert "c2pa.ai_generative_training=allowed" in (result.found or "")
    # Identity assertions are not decoded, so no DID was resolved (online that would add
    # cawg.ica.did_unavailable, offline it would have been a DNS lookup).
    assert "cawg.ica.did_unavailable" not in info.validation_codes


@pytest.mark.parametrize("name", ["adobe-20220124-C.jpg", "adobe-20220124-E-sig-CA.jpg"])
def test_signed_without_training_assertion_declares_nothing(name: str) -> None:
    info, result = decide(fixture("c2pa", name))
    assert info.present and info.entries == ()
    assert result.decision == NONE
    assert "no training-mining assertion" in (result.detail or "")
    assert info.validation_state in ("Valid", "Invalid")


def test_tampered_manifest_validation_is_recorded() -> None:
    info, result = decide(fixture("c2pa", "adobe-20220124-E-sig-CA.jpg"))
    assert info.validation_state == "Invalid"
    assert "claimSignature.mismatch" in info.validation_codes
    assert "claimSignature.mismatch" in (result.detail or "")


@pytest.mark.parametrize(
    ("folder", "name"), [("c2pa", "adobe-20220124-A.jpg"), ("iptc_xmp", "exiftool_XMP.jpg")]
)
def test_images_without_manifest_declare_nothing(folder: str, name: str) -> None:
    data = fixture(folder, name)
    assert not has_c2pa_jumbf(data)
    info, result = decide(data)
    assert not info.present and info.error is None
    assert result.decision == NONE


# --------------------------------------------------------------------------- broken input


def test_truncated_c2pa_file_fails_closed(tmp_path: Path) -> None:
    data = fixture("c2pa", "c2pa-c_for_trusted_read.jpg")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 4])  # cut inside the APP11 JUMBF
    info, result = decide(truncated.read_bytes())
    assert info.error
    assert result.decision == DENY and result.error
    assert result.reason == C2PA_TRAINING_NOT_ALLOWED
    assert (result.detail or "").startswith("unreadable C2PA manifest: ")


def test_truncated_plain_jpeg_is_left_to_the_image_stage() -> None:
    data = plain_jpeg()
    info, result = decide(data[: len(data) // 2])
    assert info.error is None and result.decision == NONE


def test_corrupted_manifest_bytes_never_crash_and_never_allow() -> None:
    data = fixture("c2pa", "c2pa-c_for_trusted_read.jpg")
    start = data.find(b"jumb")
    rng = random.Random(20260301)
    for _ in range(40):
        damaged = bytearray(data)
        for _ in range(8):
            damaged[rng.randrange(start, start + 50_000)] = rng.randrange(256)
        result = c2pa_signals(read_c2pa(bytes(damaged), "image/jpeg"))[0]
        assert result.decision == DENY


def test_unknown_media_type_and_garbage() -> None:
    assert c2pa_signals(read_c2pa(b"\x00" * 2048, "application/octet-stream"))[0].decision == NONE
    assert c2pa_signals(read_c2pa(b"not an image", None))[0].decision == NONE


def test_two_megabyte_garbage_completes_quickly() -> None:
    noise = random.Random(7).randbytes(2 * 1024 * 1024)
    started = time.perf_counter()
    assert c2pa_signals(read_c2pa(b"\xff\xd8" + noise, "image/jpeg"))[0].decision == NONE
    # Garbage that carries a C2PA JUMBF description box is C2PA data we cannot read.
    boxed = noise[:1000] + b"jumb\x00\x00\x00\x1ejumdc2pa" + noise
    result = c2pa_signals(read_c2pa(boxed, "image/jpeg"))[0]
    assert result.decision == DENY and result.error
    assert time.perf_counter() - started < 2.0


def test_failed_remote_fetch_is_unreadable() -> None:
    [result] = c2pa_signals(
        C2paInfo.failed("HTTP 503 from https://m.example/x", "https://m.example/x")
    )
    assert result.decision == DENY and result.error


# --------------------------------------------------------------------------- remote manifests


class _Recorder(BaseHTTPRequestHandler):
    body = b""
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        type(self).requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/c2pa")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def manifest_server() -> Iterator[tuple[str, list[str], bytes]]:
    """A loopback server serving a real manifest store; yields (url, requests seen, store)."""
    store = jpeg_store(fixture("c2pa", "c2pa-c_for_trusted_read.jpg"))
    handler = type("Handler", (_Recorder,), {"body": store, "requests": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/manifests/x.c2pa", handler.requests, store
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_remote_manifest_is_named_not_fetched(
    manifest_server: tuple[str, list[str], bytes],
) -> None:
    url, requests, _ = manifest_server
    image = plain_jpeg(provenance_xmp(url))
    assert remote_manifest_url(image) == url
    info, result = decide(image)
    assert requests == []  # the library was not allowed to fetch it
    assert info.remote_url == url and not info.present and info.error is None
    assert result.decision == NONE
    assert result.found == url
    assert "not read" in (result.detail or "")


def test_library_defaults_would_have_fetched(manifest_server: tuple[str, list[str], bytes]) -> None:
    # The control for the test above: c2pa's own defaults do request the URL.
    url, requests, _ = manifest_server
    image = plain_jpeg(provenance_xmp(url))
    try:
        with c2pa.Reader("image/jpeg", io.BytesIO(image)):
            pass
    except c2pa.C2paError:
        pass
    assert requests == ["/manifests/x.c2pa"]


def test_remote_manifest_fetched_by_the_caller_is_read(
    manifest_server: tuple[str, list[str], bytes],
) -> None:
    url, requests, store = manifest_server
    image = plain_jpeg(provenance_xmp(url))
    info, result = decide(image, remote_manifest_bytes=store)
    assert info.present and info.remote_read
    assert result.decision == DENY and not result.error
    assert "remote manifest validation" in (result.detail or "")
    assert requests == []
    _, garbage = decide(image, remote_manifest_bytes=b"<html>not a manifest</html>")
    assert garbage.decision == DENY and garbage.error


def test_self_referencing_provenance_is_not_remote() -> None:
    assert remote_manifest_url(fixture("c2pa", "adobe-20220124-C.jpg")) is None
    assert remote_manifest_url(plain_jpeg()) is None


# --------------------------------------------------------------------------- no network at all


def test_offline_settings_are_the_documented_ones() -> None:
    assert OFFLINE_SETTINGS["verify"] == {"remote_manifest_fetch": False, "ocsp_fetch": False}
    assert OFFLINE_SETTINGS["core"]["allowed_network_hosts"] == []
    assert OFFLINE_SETTINGS["core"]["decode_identity_assertions"] is False


_READ_ALL = """
import sys
from pathlib import Path
from crawler.signals.c2pa_manifest import c2pa_signals, read_c2pa
for path in sorted(Path(sys.argv[1]).rglob("*.jpg")):
    print(path.name, c2pa_signals(read_c2pa(path.read_bytes(), "image/jpeg"))[0].decision)
"""


def test_reading_every_fixture_makes_no_network_syscall(tmp_path: Path) -> None:
    """The c2pa library is native code: Python socket hooks cannot see its connects, strace can.

    Read online with default settings, adobe_connected_identities.jpg sends DNS queries for the
    signer's did:web domain; read through this module it must send nothing to any network.
    """
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    if not IMAGES.is_dir():
        pytest.skip(f"{IMAGES} is absent")
    log = tmp_path / "strace.log"
    command = [
        strace,
        "-f",
        "-qq",
        "-e",
        "trace=connect,sendto,sendmsg,sendmmsg",
        "-o",
        str(log),
        sys.executable,
        "-c",
        _READ_ALL,
        str(IMAGES),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    if run.returncode != 0 and "ptrace" in run.stderr.lower():
        pytest.skip(f"strace cannot trace here: {run.stderr.strip()[:200]}")
    assert run.returncode == 0, run.stderr
    assert "c2pa-c_for_trusted_read.jpg deny" in run.stdout
    assert "c2pa-rs_adobe_connected_identities.jpg allow" in run.stdout
    network = [
        line
        for line in log.read_text().splitlines()
        if ("AF_INET" in line and "127.0.0.1" not in line and "::1" not in line)
        or "htons(53)" in line
        or "sendmmsg" in line
    ]
    assert network == []


def test_read_uses_no_deprecated_thread_local_settings() -> None:
    # load_settings() is deprecated and ignored by Reader; the module passes a Context instead.
    source = (REPO / "crawler" / "signals" / "c2pa_manifest.py").read_text(encoding="utf-8")
    assert "load_settings(" not in source
    assert json.dumps(OFFLINE_SETTINGS)  # plain data, recorded with runs if wanted
