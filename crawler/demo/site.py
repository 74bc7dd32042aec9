"""The bundled sample site for ``clearance demo``, generated from code (no downloads).

Three sources share one server: ``/aurora/gallery/`` (images on ``/cdn/aurora/``) and
``/borealis/`` opted in; ``/lapsed/``'s consent has lapsed. Besides ordinary licensed pages the
site carries one of each awkward case a crawler must handle (see :data:`CASES`): links out of
scope, a robots.txt disallow for ClearanceBot and an AI-agent block, a page whose licence is
not on the allow list, an unlicensed image, a duplicate, a truncated JPEG, HTML served as
``.jpg``, a decompression-bomb PNG, a ``noai`` page, and embedded XMP licence and data-mining
metadata. Output is byte-identical across runs on the same Pillow.
"""

from __future__ import annotations

import hashlib
import html
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
CC_BY_SA = "https://creativecommons.org/licenses/by-sa/4.0/"
CC_BY_NC = "https://creativecommons.org/licenses/by-nc/4.0/"
CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"

ROBOTS_TXT = """\
# Clearance demo site.
# ClearanceBot may crawl everything except the drafts.
User-agent: ClearanceBot
Disallow: /aurora/gallery/drafts/

# AI-training crawlers are asked to keep out of the members' area: an AI-agent opt-out,
# which Clearance honours even though its own group allows the path.
User-agent: GPTBot
User-agent: CCBot
Disallow: /borealis/members/

User-agent: *
Allow: /
"""

# Paths (and one URL) of the special cases, for tests and for the demo's own summary.
CASES: dict[str, str] = {
    "robots_disallowed": "/aurora/gallery/drafts/wip.html",
    "robots_ai_optout": "/borealis/members/index.html",
    "out_of_scope_page": "/aurora/private/secret.html",
    "out_of_scope_image": "/aurora/private/secret.jpg",
    "external": "https://example.invalid/",
    "licence_not_allowed_page": "/aurora/gallery/series-4/work-3.html",
    "licence_cc0_page": "/aurora/gallery/series-2/work-1.html",
    "unlicensed_image": "/borealis/img/fog-untagged.jpg",
    "duplicate_image": "/cdn/aurora/img/dawn.jpg",
    "duplicate_image_copy": "/cdn/aurora/img/dawn-copy.jpg",
    "truncated_image": "/borealis/img/broken.jpg",
    "not_an_image": "/borealis/img/not-really.jpg",
    "decompression_bomb": "/borealis/img/bomb.png",
    "meta_noai_page": "/borealis/photos/p-9.html",
    "xmp_licensed_image": "/borealis/img/xmp-licensed.jpg",
    "iptc_dmi_prohibited_image": "/borealis/img/no-mining.jpg",
    "lapsed_start": "/lapsed/",
}

# Path prefixes a consent-respecting crawl of the demo configs never requests.
NEVER_REQUESTED: tuple[str, ...] = (
    "/aurora/private/",
    "/aurora/gallery/drafts/",
    "/borealis/members/",
    "/lapsed/",
)

BOMB_SIDE = 16_000  # 256 Mpx declared: above max_pixels and Pillow's own bomb limit


@dataclass(frozen=True)
class _Picture:
    path: str  # the img src
    alt: str
    srcset: tuple[str, ...] = ()  # extra "path 200w" candidates on the img
    sources: tuple[str, ...] = ()  # <picture><source srcset> paths
    caption: str | None = None


def _page(
    title: str,
    body: str,
    licence: str | None = None,
    meta_robots: str | None = None,
) -> str:
    head = [f"<title>{html.escape(title)}</title>", '<meta charset="utf-8">']
    if meta_robots:
        head.append(f'<meta name="robots" content="{meta_robots}">')
    foot = ""
    if licence:
        names = {CC_BY: "CC BY 4.0", CC_BY_SA: "CC BY-SA 4.0", CC_BY_NC: "CC BY-NC 4.0", CC0: "CC0"}
        foot = (
            f'<footer>Licensed under <a rel="license" href="{licence}">'
            f"{names.get(licence, licence)}</a>.</footer>"
        )
    return (
        '<!doctype html>\n<html lang="en"><head>'
        + "".join(head)
        + f"</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n{foot}\n</body></html>\n"
    )


def _figure(picture: _Picture) -> str:
    alt = html.escape(picture.alt, quote=True)
    srcset = ""
    if picture.srcset:
        srcset = f' srcset="{", ".join(picture.srcset)}" sizes="(max-width: 400px) 100vw, 400px"'
    img = f'<img src="{picture.path}"{srcset} alt="{alt}">'
    if picture.sources:
        sources = "".join(f'<source srcset="{src}" type="{_mime(src)}">' for src in picture.sources)
        img = f"<picture>{sources}{img}</picture>"
    caption = f"<figcaption>{html.escape(picture.caption)}</figcaption>" if picture.caption else ""
    return f"<figure>{img}{caption}</figure>"


def _links(items: list[tuple[str, str]]) -> str:
    rows = "".join(f'<li><a href="{href}">{html.escape(text)}</a></li>' for href, text in items)
    return f"<ul>{rows}</ul>"


def _mime(path: str) -> str:
    return "image/png" if path.endswith(".png") else "image/jpeg"


# --------------------------------------------------------------------------- images


def _artwork(seed: int, size: tuple[int, int]) -> Image.Image:
    """A gradient with a few shapes; ``seed`` picks colours and layout deterministically."""
    digest = hashlib.sha256(f"demo-image-{seed}".encode()).digest()
    c1 = (digest[0], digest[1], digest[2])
    c2 = (255 - digest[3], 255 - digest[4], 255 - digest[5])
    gradient = Image.linear_gradient("L").rotate(digest[6] % 4 * 90).resize(size)
    image = ImageOps.colorize(gradient, c1, c2)
    draw = ImageDraw.Draw(image)
    w, h = size
    for i in range(3):
        x0, y0 = digest[7 + i] * w // 256, digest[10 + i] * h // 256
        r = max(4, digest[13 + i] * min(w, h) // 1024)
        fill = (digest[16 + i], digest[19 + i], digest[22 + i])
        if (digest[25] >> i) & 1:
            draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=fill)
        else:
            draw.rectangle((x0 - r, y0 - r, x0 + r, y0 + r), fill=fill)
    return image


def _encode(image: Image.Image, fmt: str, xmp: bytes | None = None) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        extra = {"xmp": xmp} if xmp else {}
        image.save(out, "JPEG", quality=85, **extra)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def _xmp(attributes: str, creator: str) -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"\n'
        '    xmlns:cc="http://creativecommons.org/ns#"\n'
        '    xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"\n'
        f"    {attributes}>\n"
        f"   <dc:creator><rdf:Seq><rdf:li>{creator}</rdf:li></rdf:Seq></dc:creator>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


XMP_CC_BY = _xmp(
    f'xmpRights:Marked="True" xmpRights:WebStatement="{CC_BY}" cc:license="{CC_BY}"',
    "Borealis Photo Cooperative",
)
XMP_DMI_PROHIBITED = _xmp(
    'plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"',
    "Borealis Photo Cooperative",
)


def bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A valid 1-bit greyscale PNG of ``side`` x ``side`` zero pixels (~30 KB for 16,000).

    Rows are compressed one reusable zero row at a time: no pixel buffer is ever allocated,
    but decoding the file allocates ``side**2`` bytes in Pillow.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then packed bits
    compressor = zlib.compressobj(9)
    rows_per_block = max(1, (1 << 20) // len(row))
    block = row * rows_per_block
    parts, left = [], side
    while left > 0:
        n = min(rows_per_block, left)
        parts.append(compressor.compress(block if n == rows_per_block else row * n))
        left -= n
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- the site


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._seed = 0

    def text(self, path: str, content: str) -> None:
        self.raw(path, content.encode("utf-8"))

    def raw(self, path: str, data: bytes) -> None:
        target = self.root / path.lstrip("/")
        if path.endswith("/"):
            target = target / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def image(
        self, path: str, size: tuple[int, int], xmp: bytes | None = None, seed: int | None = None
    ) -> bytes:
        if seed is None:
            self._seed += 1
            seed = self._seed
        data = _encode(_artwork(seed, size), "PNG" if path.endswith(".png") else "JPEG", xmp)
        self.raw(path, data)
        return data


_AURORA_TITLES = ["Northern Lights", "Ice Fields", "Midnight Sun", "Tundra"]
_AURORA_LICENCES: dict[int, str | None] = {1: CC_BY, 2: CC0, 3: None, 4: CC_BY}


def _aurora(w: _Writer) -> None:
    series_links = []
    for s, title in enumerate(_AURORA_TITLES, start=1):
        work_links = []
        for n in range(1, 5):
            page = f"/aurora/gallery/series-{s}/work-{n}.html"
            name = f"{title}, study {n}"
            stem = f"/cdn/aurora/img/s{s}-w{n}"
            if s == 1 and n == 1:
                picture = _Picture(CASES["duplicate_image"], f"{name}: dawn over the fjord")
                w.image(picture.path, (320, 240), seed=1000)
            elif s == 3 and n == 2:  # the same bytes under another URL
                picture = _Picture(CASES["duplicate_image_copy"], f"{name}: dawn, again")
                w.image(picture.path, (320, 240), seed=1000)
            elif s == 1:  # srcset candidates
                w.image(f"{stem}-200.jpg", (200, 150))
                w.image(f"{stem}-400.jpg", (400, 300))
                picture = _Picture(
                    f"{stem}-400.jpg",
                    f"{name}: ribbons of green light",
                    srcset=(f"{stem}-200.jpg 200w", f"{stem}-400.jpg 400w"),
                )
            elif s == 2:  # <picture> with a PNG source and a JPEG fallback
                w.image(f"{stem}.png", (256, 256))
                w.image(f"{stem}.jpg", (256, 256))
                picture = _Picture(
                    f"{stem}.jpg",
                    f"{name}: pale ice under a low sun",
                    sources=(f"{stem}.png",),
                    caption=f"{name}. Digital painting.",
                )
            else:
                w.image(f"{stem}.jpg", (240 + 20 * n, 180 + 10 * s))
                picture = _Picture(f"{stem}.jpg", f"{name}: open tundra", caption=name)
            licence = CC_BY_NC if page == CASES["licence_not_allowed_page"] else _AURORA_LICENCES[s]
            body = _figure(picture) + _links(
                [(f"/aurora/gallery/series-{s}/", f"Back to {title}"), ("/aurora/gallery/", "Home")]
            )
            w.text(page, _page(name, body, licence))
            work_links.append((page, name))
        w.text(
            f"/aurora/gallery/series-{s}/",
            _page(f"Series: {title}", _links(work_links), _AURORA_LICENCES[s]),
        )
        series_links.append((f"/aurora/gallery/series-{s}/", title))

    w.image("/cdn/aurora/img/banner.png", (400, 100))
    index = (
        _figure(_Picture("/cdn/aurora/img/banner.png", "Aurora Art Collective banner"))
        + _links(series_links)
        + "<h2>Elsewhere</h2>"
        + _links(
            [
                ("/aurora/gallery/drafts/wip.html", "Work in progress (robots: disallowed)"),
                (CASES["out_of_scope_page"], "Members only (outside the consented scope)"),
                (CASES["external"], "An external site (outside every scope)"),
            ]
        )
        + _figure(_Picture(CASES["out_of_scope_image"], "A private sketch, hotlinked"))
    )
    w.text("/aurora/gallery/", _page("Aurora Art Collective", index, CC_BY))

    w.image("/aurora/gallery/drafts/wip.jpg", (200, 200))
    w.text(
        "/aurora/gallery/drafts/",
        _page("Drafts", _links([("/aurora/gallery/drafts/wip.html", "Work in progress")])),
    )
    w.text(
        CASES["robots_disallowed"],
        _page("Work in progress", _figure(_Picture("/aurora/gallery/drafts/wip.jpg", "Draft"))),
    )
    w.image(CASES["out_of_scope_image"], (160, 120))
    w.text(
        CASES["out_of_scope_page"],
        _page("Private", _figure(_Picture(CASES["out_of_scope_image"], "Private sketch")), CC_BY),
    )


def _borealis(w: _Writer) -> None:
    photos: list[tuple[str, str]] = []
    licences = {1: CC0, 2: CC_BY_SA, 3: CC0, 4: CC_BY, 5: CC0}
    for n in range(1, 6):
        page = f"/borealis/photos/p-{n}.html"
        img = f"/borealis/img/photo-{n}.jpg"
        w.image(img, (300 + 20 * n, 200))
        body = _figure(_Picture(img, f"Photo {n}: the coast at dusk", caption=f"Photo {n}"))
        w.text(page, _page(f"Photo {n}", body, licences[n]))
        photos.append((page, f"Photo {n}"))

    cases = [
        (  # licensed only by XMP inside the file (no rel=license on the page)
            6,
            None,
            None,
            [_Picture(CASES["xmp_licensed_image"], "Harbour lights (licence embedded in XMP)")],
        ),
        (  # no licence anywhere and no source default
            7,
            None,
            None,
            [_Picture(CASES["unlicensed_image"], "Fog over the bay (no licence given)")],
        ),
        (  # broken files and a bomb, on a licensed page
            8,
            CC0,
            None,
            [
                _Picture(CASES["truncated_image"], "A truncated JPEG"),
                _Picture(CASES["not_an_image"], "An HTML page served as .jpg"),
                _Picture(CASES["decompression_bomb"], "A decompression bomb"),
                _Picture(CASES["iptc_dmi_prohibited_image"], "Data mining prohibited (IPTC)"),
            ],
        ),
        (  # the page opts out of AI use
            9,
            CC0,
            "noai, noimageai",
            [_Picture("/borealis/img/opted-out.jpg", "Opted out by meta robots")],
        ),
    ]
    w.image(CASES["xmp_licensed_image"], (320, 213), xmp=XMP_CC_BY)
    w.image(CASES["unlicensed_image"], (300, 200))
    w.image(CASES["iptc_dmi_prohibited_image"], (240, 160), xmp=XMP_DMI_PROHIBITED)
    w.image("/borealis/img/opted-out.jpg", (220, 220))
    whole = _encode(_artwork(2000, (360, 240)), "JPEG")
    w.raw(CASES["truncated_image"], whole[: len(whole) // 2])
    w.text(CASES["not_an_image"], _page("Not an image", "<p>This is HTML, not a JPEG.</p>"))
    w.raw(CASES["decompression_bomb"], bomb_png())
    for n, licence, meta, pictures in cases:
        page = f"/borealis/photos/p-{n}.html"
        body = "".join(_figure(p) for p in pictures)
        w.text(page, _page(f"Photo {n}", body, licence, meta_robots=meta))
        photos.append((page, f"Photo {n}"))

    w.image("/borealis/members/portrait.jpg", (200, 260))
    w.text(
        CASES["robots_ai_optout"],
        _page(
            "Members",
            _figure(_Picture("/borealis/members/portrait.jpg", "Member portrait")),
            CC0,
        ),
    )
    links = photos + [(CASES["robots_ai_optout"], "Members (AI crawlers asked to keep out)")]
    w.text("/borealis/", _page("Borealis Photo Cooperative", _links(links), CC0))


def _lapsed(w: _Writer) -> None:
    pages = []
    for n in range(1, 4):
        img = f"/lapsed/img/archive-{n}.jpg"
        w.image(img, (64 * n + 64, 64 * n + 64))
        page = f"/lapsed/p-{n}.html"
        w.text(page, _page(f"Archive {n}", _figure(_Picture(img, f"Archive item {n}")), CC0))
        pages.append((page, f"Archive {n}"))
    w.text("/lapsed/", _page("Lapsed Archive", _links(pages), CC0))


def generate_site(root: Path) -> None:
    """Write the sample site under ``root`` (created if needed); deterministic."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    writer = _Writer(root)
    writer.text("/robots.txt", ROBOTS_TXT)
    writer.text(
        "/index.html",
        _page(
            "Clearance demo",
            _links(
                [
                    ("/aurora/gallery/", "Aurora Art Collective"),
                    ("/borealis/", "Borealis Photo Cooperative"),
                    ("/lapsed/", "Lapsed Archive"),
                ]
            ),
        ),
    )
    _aurora(writer)
    _borealis(writer)
    _lapsed(writer)
