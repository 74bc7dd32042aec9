"""The HTML provenance report: one self-contained page, rendered from
`pipeline.reports.provenance.build_report` (the same model and sections as Markdown and JSON).

It loads nothing from any URL: inline CSS, inline SVG charts, a few lines of inline JS for
sorting and filtering the sources table, and a Content-Security-Policy that forbids every fetch
(``default-src 'none'``), so it reads the same offline, from a mail attachment or on paper.
"""

from __future__ import annotations

from html import escape
from typing import Any

from pipeline.reports.markdown import withheld_sentence

PALETTE = ("#2f5d8a", "#3f8f7a", "#c07a2c", "#8a4f7d", "#5b7f2f", "#a4443c", "#4a6f9f",
           "#7a6a3a")

CSS = """
:root { --ink:#1d2430; --muted:#5d6878; --rule:#d9dee6; --soft:#f4f6f9; --accent:#2f5d8a;
  --ok:#2e7d4f; --warn:#a4443c; }
* { box-sizing: border-box; }
html { font-size: 15px; }
body { margin: 0; color: var(--ink); background: #fff;
  font-family: "Source Sans 3", "Segoe UI", "Helvetica Neue", "Liberation Sans", Arial,
    sans-serif; line-height: 1.5; }
main { max-width: 1080px; margin: 0 auto; padding: 2.2rem 2rem 4rem; }
header.top { border-bottom: 3px solid var(--accent); padding-bottom: 1rem; margin-bottom: 1.6rem; }
.kicker { text-transform: uppercase; letter-spacing: .08em; font-size: .78rem; color: var(--muted);
  margin: 0 0 .2rem; }
h1 { font-size: 1.9rem; margin: 0 0 .3rem; font-weight: 650; letter-spacing: -.01em; }
h2 { font-size: 1.25rem; margin: 2.4rem 0 .8rem; padding-bottom: .3rem;
  border-bottom: 1px solid var(--rule); font-weight: 650; }
h3 { font-size: 1.02rem; margin: 1.4rem 0 .5rem; font-weight: 650; }
.meta { color: var(--muted); font-size: .9rem; margin: 0; }
code, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace;
  font-size: .84em; overflow-wrap: anywhere; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: .8rem;
  margin: 1rem 0 1.2rem; }
.kpi { background: var(--soft); border-radius: 6px; padding: .75rem .9rem; }
.kpi .v { font-size: 1.6rem; font-weight: 650; line-height: 1.15; }
.kpi .l { color: var(--muted); font-size: .8rem; text-transform: uppercase; letter-spacing: .05em; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1.2rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr));
  gap: 1rem 2rem; }
figure { margin: 0; }
figure svg { display: block; max-width: 540px; }
figcaption { font-weight: 650; font-size: .95rem; margin-bottom: .4rem; }
svg text { font-family: inherit; font-size: 12px; fill: var(--ink); }
svg .n { fill: var(--muted); }
table { border-collapse: collapse; width: auto; min-width: 55%; font-size: .9rem;
  margin: .4rem 0 1rem; }
.scroll { overflow-x: auto; }
#sources-table { width: 100%; font-size: .84rem; }
#sources-table td.id { white-space: nowrap; }
#sources-table .nm { display: block; color: var(--muted); font-size: .8rem; white-space: normal; }
.legend { font-size: .8rem; color: var(--muted); margin: -.2rem 0 .3rem; }
.legend i { display: inline-block; width: .7rem; height: .7rem; border-radius: 2px;
  margin: 0 .3rem 0 .6rem; vertical-align: -1px; }
th, td { text-align: left; padding: .38rem .6rem; border-bottom: 1px solid var(--rule);
  vertical-align: top; }
th { font-weight: 650; background: var(--soft); white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th[data-sort] { cursor: pointer; user-select: none; }
th[data-sort]::after { content: " \\2195"; color: var(--muted); font-size: .8em; }
th[aria-sort="ascending"]::after { content: " \\2191"; }
th[aria-sort="descending"]::after { content: " \\2193"; }
.filter { margin: .2rem 0 .4rem; }
.filter input { font: inherit; padding: .3rem .55rem; border: 1px solid var(--rule);
  border-radius: 4px; width: 18rem; max-width: 100%; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 999px; font-size: .78rem;
  font-weight: 650; }
.badge.ok { background: #e3f2e8; color: var(--ok); }
.badge.no { background: #f7e4e2; color: var(--warn); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 1rem; }
.card { border: 1px solid var(--rule); border-radius: 8px; padding: .9rem 1.1rem;
  break-inside: avoid; }
.card h3 { margin: 0 0 .2rem; }
.card .sub { color: var(--muted); font-size: .85rem; margin: 0 0 .6rem; }
.card table { font-size: .85rem; margin: .2rem 0 .6rem; width: 100%; }
.card caption { text-align: left; text-transform: uppercase; letter-spacing: .06em;
  font-size: .72rem; font-weight: 650; color: var(--accent); padding: .5rem 0 .2rem; }
.card th { background: none; color: var(--muted); font-weight: 600; width: 40%; }
.note { background: var(--soft); border-left: 3px solid var(--accent); padding: .6rem .9rem;
  margin: .6rem 0; }
.none { color: var(--muted); font-style: italic; }
footer { margin-top: 3rem; color: var(--muted); font-size: .8rem; border-top: 1px solid var(--rule);
  padding-top: .8rem; }
@media print {
  html { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  .filter, th[data-sort]::after { display: none; }
  h2 { break-after: avoid; }
  .card, figure, table { break-inside: avoid; }
  .charts { grid-template-columns: 1fr; gap: .6rem; }
  .kpis { grid-template-columns: repeat(6, 1fr); }
  .kpi .v { font-size: 1.25rem; }
  a { color: inherit; text-decoration: none; }
}
"""

SCRIPT = """
(function () {
  var table = document.getElementById('sources-table');
  if (!table) return;
  var body = table.tBodies[0];
  var input = document.getElementById('sources-filter');
  input.addEventListener('input', function () {
    var q = input.value.toLowerCase();
    Array.prototype.forEach.call(body.rows, function (row) {
      row.hidden = q && row.textContent.toLowerCase().indexOf(q) < 0;
    });
  });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) {
        c.removeAttribute('aria-sort');
      });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var num = th.getAttribute('data-sort') === 'num';
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
        var c = num ? (parseFloat(x) - parseFloat(y)) : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  document.documentElement.setAttribute('data-sortable', 'ready');
})();
"""

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:; base-uri 'none'; form-action 'none'")


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _ts(value: str | None) -> str:
    """An ISO timestamp to the second, for a reader: 2026-01-02 03:04:05 UTC."""
    if not value:
        return ""
    text = value.replace("T", " ").replace("Z", "").replace("+00:00", "")
    return text.split(".")[0] + " UTC"


def _bar_chart(title: str, data: dict[str, int], empty: str,
               colours: dict[str, str] | None = None, legend: str = "") -> str:
    """A horizontal bar chart as inline SVG (labels left, counts right of the bars); one
    colour, or one per label from ``colours``."""
    items = sorted(data.items(), key=lambda kv: (-kv[1], kv[0]))
    if not items:
        return (f'<figure><figcaption>{_e(title)}</figcaption>'
                f'<p class="none">{_e(empty)}</p></figure>')
    label_w, bar_w, row_h = 190, 250, 24
    top = max(v for _, v in items) or 1
    height = row_h * len(items) + 6
    parts = [f'<figure><figcaption>{_e(title)}</figcaption>{legend}'
             f'<svg role="img" aria-label="{_e(title)}" width="100%" '
             f'viewBox="0 0 {label_w + bar_w + 60} {height}" '
             f'preserveAspectRatio="xMinYMin meet">']
    for i, (label, value) in enumerate(items):
        y = i * row_h + 3
        w = max(2.0, bar_w * value / top)
        colour = (colours or {}).get(label, PALETTE[0])
        shown = label if len(label) <= 28 else label[:27] + "\u2026"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
            f'<title>{_e(label)}</title>{_e(shown)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" rx="2" '
            f'fill="{colour}"/>'
            f'<text class="n" x="{label_w + w + 6:.1f}" y="{y + 15}">{value}</text>'
        )
    parts.append("</svg></figure>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    if not rows:
        return '<p class="none">None.</p>'
    numeric = numeric or set()
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{_e(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{_e(v)}</td>'
                         for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _counts(headers: list[str], mapping: dict[str, int]) -> str:
    return _table(headers, [[k, n] for k, n in mapping.items()], {1})


def _nested(mapping: dict[str, dict[str, int]]) -> str:
    return _table(["source", "reason", "rows"],
                  [[s, r, n] for s, per in mapping.items() for r, n in per.items()], {2})


def _kpi(value: Any, label: str) -> str:
    return (f'<div class="kpi"><div class="v">{_e(value)}</div>'
            f'<div class="l">{_e(label)}</div></div>')


def _overview(report: dict[str, Any]) -> str:
    o, m, totals = report["overview"], report["manifest"], report["totals"]
    policy = m["policy"]
    span = (f"{_ts(o['fetched_from'])} to {_ts(o['fetched_to'])}" if o["fetched_from"]
            else "no rows")
    licences = policy.get("licences_effective") or policy["licences_allow"]
    facts = [
        ("Rows", o["rows"]),
        ("Sources with rows", ", ".join(o["sources"]) or "none"),
        ("Licences", ", ".join(o["licences"]) or "none"),
        ("Fetched", span),
        ("Admitted under", f"intended use {policy['intended_use']}; licences "
                           f"{', '.join(licences)}; policy as of {policy['today']}"),
        ("Input runs", ", ".join(m["inputs"]) or "none"),
        ("Config sha256", m["config_sha256"]),
        ("Schema version", m["schema_version"]),
    ]
    rows = "".join(
        f'<dt>{_e(k)}</dt><dd{" class=mono" if k == "Config sha256" else ""}>{_e(v)}</dd>'
        for k, v in facts)
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in m["notes"])
    return (
        '<section id="overview"><h2>Overview</h2><div class="kpis">'
        + _kpi(o["rows"], "rows published")
        + _kpi(len(o["sources"]), "sources")
        + _kpi(len(o["licences"]), "licences")
        + _kpi(totals["excluded"], "excluded at build")
        + _kpi(report["crawl_rejections"]["total"], "refused at crawl")
        + _kpi(o["withheld"], "withheld")
        + f'</div><dl class="facts">{rows}</dl>{notes}'
        + "<h3>Totals</h3>"
        + _table(["candidates", "kept", "excluded"],
                 [[totals["candidates"], totals["kept"], totals["excluded"]]], {0, 1, 2})
        + "</section>"
    )


def _charts(report: dict[str, Any]) -> str:
    exclusions: dict[str, int] = {}
    colours: dict[str, str] = {}
    stage_colour = {"build": PALETTE[2], "crawl": PALETTE[0]}
    for stage, section in (("build", report["build_exclusions"]),
                           ("crawl", report["crawl_rejections"])):
        for reason, n in section["by_reason"].items():
            label = f"{reason} ({stage})"
            exclusions[label], colours[label] = n, stage_colour[stage]
    legend = ('<div class="legend">' + "".join(
        f'<i style="background:{c}"></i>{_e(stage)} stage' for stage, c in stage_colour.items())
        + "</div>")
    conflicts = {c["source_id"]: c["count"] for c in report["signal_conflicts"]}
    return (
        '<section id="charts"><h2>At a glance</h2><div class="charts">'
        + _bar_chart("Licence mix (rows)", report["kept"]["by_licence"], "No rows.",
                     {k: PALETTE[1] for k in report["kept"]["by_licence"]})
        + _bar_chart("Rows per source", report["kept"]["by_source"], "No rows.")
        + _bar_chart("Exclusions per reason", exclusions, "No exclusions.", colours, legend)
        + _bar_chart("Opt-out conflicts per source", conflicts, "No opt-out conflicts.",
                     {k: PALETTE[5] for k in conflicts})
        + "</div></section>"
    )


_SOURCE_COLUMNS = (
    ("source", "source_id", "text"), ("rows", "rows", "num"),
    ("consent", "consent_id", "text"), ("age verification", "age_verification_id", "text"),
    ("eligible", "eligible", "text"), ("excluded at build", "build_excluded", "num"),
    ("refused at crawl", "crawl_rejected", "num"),
    ("opt-out refusals", "opt_out_refusals", "num"),
)
# What a record's cell shows under its id.
_UNDER = {
    "source_id": lambda r: r["name"],
    "consent_id": lambda r: (f"{r['consent_status']}, expires {r['consent_expires_at']}"
                             if r["consent_id"] else "no record"),
    "age_verification_id": lambda r: (f"expires {r['age_verification_expires_at']}"
                                      if r["age_verification_id"] else "no record"),
}


def _sources_table(report: dict[str, Any]) -> str:
    head = "".join(f'<th data-sort="{kind}"{" class=num" if kind == "num" else ""}>{_e(t)}</th>'
                   for t, _, kind in _SOURCE_COLUMNS)
    rows = []
    for r in report["source_table"]:
        cells = []
        for _, key, kind in _SOURCE_COLUMNS:
            value = r[key]
            if key == "eligible":
                shown = ('<span class="badge ok">yes</span>' if value
                         else '<span class="badge no">no</span>')
                cells.append(f'<td data-v="{int(bool(value))}">{shown}</td>')
                continue
            if key in _UNDER:
                under = _UNDER[key](r)
                sub = f'<span class="nm">{_e(under)}</span>' if under else ""
                shown = f"<b>{_e(value)}</b>" if key == "source_id" else _e(value or "")
                cells.append(f'<td class="id" data-v="{_e(value)}">{shown}{sub}</td>')
                continue
            cls = " class=num" if kind == "num" else ' class="id"'
            cells.append(f'<td{cls} data-v="{_e(value)}">{_e(value)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<section id="sources"><h2>Sources</h2>'
        '<div class="filter"><input id="sources-filter" type="search" '
        'placeholder="Filter sources" aria-label="Filter sources"></div>'
        f'<div class="scroll"><table id="sources-table"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></div></section>'
    )


def _card(source_id: str, info: dict[str, Any], summary: dict[str, Any]) -> str:
    verdict = info["eligibility"]
    badge = ('<span class="badge ok">eligible</span>' if verdict["eligible"]
             else f'<span class="badge no">not eligible: {_e(verdict["reason"])}</span>')
    parts = [f'<article class="card" id="source-{_e(source_id)}"><h3>{_e(source_id)}</h3>'
             f'<p class="sub">{_e(info.get("name") or "")} {badge}</p>']
    if verdict.get("message"):
        parts.append(f'<p class="sub">{_e(verdict["message"])}</p>')
    consent, av = info.get("consent"), info.get("age_verification")
    if consent is None:
        parts.append('<p class="none">No consent record: the source is not in the current '
                     "config.</p>")
    else:
        evidence = consent["evidence"]
        rows = [("id", consent["id"]), ("status", consent["status"]),
                ("granted by", consent["granted_by"]), ("granted", consent["granted_at"]),
                ("expires", consent["expires_at"]), ("uses", ", ".join(consent["uses"])),
                ("evidence", evidence["uri"]), ("evidence sha256", evidence["sha256"]),
                ("record sha256", info.get("consent_sha256"))]
        parts.append("<table><caption class=sub>Consent</caption>" + "".join(
            f'<tr><th>{_e(k)}</th><td{" class=mono" if "sha256" in k else ""}>{_e(v)}</td></tr>'
            for k, v in rows) + "</table>")
        if av is None:
            parts.append('<p class="none">No age-verification record.</p>')
        else:
            rows = [("id", av["id"]), ("method", av["method"]),
                    ("verified by", av["verified_by"]), ("verified", av["verified_at"]),
                    ("expires", av["expires_at"]),
                    ("record sha256", info.get("age_verification_sha256"))]
            parts.append("<table><caption class=sub>Age verification</caption>" + "".join(
                f'<tr><th>{_e(k)}</th><td{" class=mono" if "sha256" in k else ""}>{_e(v)}</td>'
                "</tr>" for k, v in rows) + "</table>")
    counts = [("rows published", summary["rows"]), ("excluded at build", summary["build_excluded"]),
              ("refused at crawl", summary["crawl_rejected"]),
              ("refused by its own opt-outs", summary["opt_out_refusals"])]
    parts.append("<table><caption class=sub>Counts</caption>" + "".join(
        f"<tr><th>{_e(k)}</th><td class=num>{_e(v)}</td></tr>" for k, v in counts)
        + "</table></article>")
    return "".join(parts)


def _cards(report: dict[str, Any]) -> str:
    summaries = {r["source_id"]: r for r in report["source_table"]}
    cards = "".join(_card(s, info, summaries[s]) for s, info in report["sources"].items())
    return ('<section id="consent"><h2>Sources: consent and age verification</h2>'
            f'<div class="cards">{cards or "<p class=none>No sources.</p>"}</div></section>')


def _kept(report: dict[str, Any]) -> str:
    licences = report["licences"]
    per_source = licences["by_source"]
    return (
        '<section id="kept"><h2>Kept rows</h2>'
        "<h3>Per source</h3>" + _counts(["source", "rows"], report["kept"]["by_source"])
        + "<h3>Per licence</h3>" + _counts(["licence", "rows"], report["kept"]["by_licence"])
        + "<h3>Per licence evidence</h3>"
        + _counts(["licence_source", "rows"], report["kept"]["by_licence_source"])
        + "<h3>Licence evidence per source</h3>"
        + _table(["source", "licence_source", "rows"],
                 [[s, k, n] for s, e in per_source.items()
                  for k, n in e["licence_source"].items()], {2})
        + "<h3>Licence disagreements</h3>"
        + "<p>Rows whose evidence named different licences, all allowed; the more restrictive "
        f"was kept. Total: {licences['disagreements']}</p>"
        + _table(["source", "rows"], [[s, e["disagreements"]] for s, e in per_source.items()],
                 {1})
        + "</section>"
    )


def _exclusions(report: dict[str, Any]) -> str:
    out = []
    for anchor, title, section in (
        ("build-exclusions", "Build-stage exclusions", report["build_exclusions"]),
        ("crawl-rejections", "Crawl-stage rejections", report["crawl_rejections"]),
    ):
        out.append(f'<section id="{anchor}"><h2>{title}</h2><p>Total: {section["total"]}</p>'
                   "<h3>Per reason</h3>" + _counts(["reason", "rows"], section["by_reason"])
                   + "<h3>Per source</h3>" + _nested(section["by_source"]) + "</section>")
    crawl = report["crawl_rejections"]
    if crawl["runs_missing"]:
        out.append(f'<p class="note">Rejections not found for run(s): '
                   f'{_e(", ".join(crawl["runs_missing"]))}</p>')
    if crawl["runs_changed_since_build"]:
        out.append(f'<p class="note">Rejections changed since the build for run(s): '
                   f'{_e(", ".join(crawl["runs_changed_since_build"]))}</p>')
    return "".join(out)


def _consent_changed(report: dict[str, Any]) -> str:
    if not report["consent_changed"]:
        return ""
    rows = [[c["source_id"], c["rows"], ", ".join(u["consent_id"] for u in c["crawled_under"]),
             c["current"]["consent_id"]] for c in report["consent_changed"]]
    return ('<section id="consent-changed"><h2>Consent records changed since crawl</h2>'
            + _table(["source", "rows", "crawled under", "current"], rows, {1}) + "</section>")


def _conflicts(report: dict[str, Any]) -> str:
    items = "".join(f"<li>{_e(c['message'])}</li>" for c in report["signal_conflicts"])
    body = f"<ul>{items}</ul>" if items else '<p class="none">None.</p>'
    return f'<section id="conflicts"><h2>Signal conflicts</h2>{body}</section>'


def _changes(changes: dict[str, Any] | None) -> str:
    if changes is None:
        return ('<section id="changes"><h2>Changes since the previous version</h2>'
                '<p class="none">First version: nothing to compare with.</p></section>')
    then = f"rows in v{changes['since']}"
    return (
        f'<section id="changes"><h2>Changes since v{changes["since"]}</h2>'
        f'<div class="kpis">{_kpi(changes["rows_then"], then)}'
        f'{_kpi(changes["rows_now"], "rows now")}{_kpi(changes["added"], "added")}'
        f'{_kpi(changes["removed"], "removed")}</div>'
        "<p>Counts per reason only: which rows left is never published.</p>"
        + _counts(["reason", "rows removed"], changes["removed_by_reason"]) + "</section>"
    )


def render_html(report: dict[str, Any]) -> str:
    m = report["manifest"]
    title = f"Provenance report: {m['name']} v{m['version']}"
    body = "".join([
        f'<header class="top"><p class="kicker">Clearance provenance report</p>'
        f"<h1>{_e(m['name'])} v{_e(m['version'])}</h1>"
        f'<p class="meta">Built {_e(_ts(m["created_at"]))} &middot; folder <code>{_e(m["path"])}'
        "</code> (published rows in <code>data/</code>)</p></header>",
        _overview(report),
        _charts(report),
        _sources_table(report),
        _cards(report),
        _kept(report),
        _exclusions(report),
        _consent_changed(report),
        _conflicts(report),
        _changes(report["changes"]),
        '<section id="withheld"><h2>Withheld</h2>'
        f'<p>{_e(withheld_sentence(report["overview"]["withheld"]))}</p></section>',
        "<footer>Generated by Clearance from the version folder and its input runs. Counts only "
        "for anything removed or withheld.</footer>",
    ])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main><script>{SCRIPT}</script></body></html>\n"
    )
