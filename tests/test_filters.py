"""pipeline.build.filters: the BuildFilter base (counts, exclusion rows) and each build filter."""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa
import pytest
from helpers_config import source_doc, write_config
from helpers_runs import FETCHED_AT, make_item

from pipeline.build.filters import (
    BuildFilter,
    ConsentFilter,
    DedupeFilter,
    LicenceFilter,
    default_filters,
)
from pipeline.runs.schema import EXCLUSIONS_SCHEMA, ITEMS_SCHEMA


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{**r, "run_id": r["run_id"] or "r1"} for r in rows], ITEMS_SCHEMA)


@pytest.fixture
def config(tmp_path):
    return write_config(
        tmp_path / "c",
        [source_doc("aurora"), source_doc("birch", status="revoked"), source_doc("cedar")],
    )


class OddUrls(BuildFilter):
    name = "odd"
    columns = ("url",)

    def filter(self, row):
        if row["url"].endswith("1.jpg"):
            return False, "not_an_image", f"odd {row['url']}"
        return True


def test_base_counts_and_writes_exclusion_rows(config):
    a = config.sources["aurora"]
    table = _table([make_item(a, f"https://aurora.example/gallery/{i}.jpg") for i in range(3)])
    step = OddUrls()
    kept, excluded = step(table)
    assert kept.column("url").to_pylist() == [
        "https://aurora.example/gallery/0.jpg",
        "https://aurora.example/gallery/2.jpg",
    ]
    assert excluded.schema.equals(EXCLUSIONS_SCHEMA)
    (row,) = excluded.to_pylist()
    assert row == {
        "url": "https://aurora.example/gallery/1.jpg",
        "page_url": "https://aurora.example/gallery/",
        "source_id": "aurora",
        "stage": "build",
        "reason": "not_an_image",
        "detail": "odd https://aurora.example/gallery/1.jpg",
        "at": FETCHED_AT,
        "row_id": table.column("row_id")[1].as_py(),
        "run_id": "r1",
    }
    assert step.summary() == {"name": "odd", "total": 3, "kept": 2, "dropped": {"not_an_image": 1}}


def test_unknown_reason_code_is_a_programming_error(config):
    class Bad(BuildFilter):
        columns = ("url",)

        def filter(self, row):
            return False, "because", None

    a = config.sources["aurora"]
    with pytest.raises(ValueError, match="bad verdict"):
        Bad()(_table([make_item(a, "https://aurora.example/gallery/1.jpg")]))


def test_consent_filter_reasons(config):
    rows = [
        make_item(config.sources["aurora"], "https://aurora.example/gallery/1.jpg"),
        make_item(config.sources["birch"], "https://birch.example/gallery/1.jpg"),
        make_item(config.sources["cedar"], "https://cedar.example/gallery/1.jpg"),
        {**make_item(config.sources["aurora"], "https://gone.example/1.jpg"), "source_id": "gone"},
    ]
    step = ConsentFilter(config, date.today(), suspended={"cedar"})
    kept, excluded = step(_table(rows))
    assert kept.column("source_id").to_pylist() == ["aurora"]
    got = {r["source_id"]: (r["reason"], r["detail"]) for r in excluded.to_pylist()}
    assert got["birch"] == ("revoked", "consent C-birch is revoked")
    assert got["cedar"][0] == "revoked" and "suspended" in got["cedar"][1]
    assert got["gone"][0] == "consent_inactive" and "not in the current config" in got["gone"][1]


def test_consent_filter_checks_the_given_day(config):
    row = make_item(config.sources["aurora"], "https://aurora.example/gallery/1.jpg")
    step = ConsentFilter(config, date.today() + timedelta(days=1000), suspended=set())
    _, excluded = step(_table([row]))
    (e,) = excluded.to_pylist()
    assert e["reason"] == "revoked" and "expired" in e["detail"]


def test_licence_filter_caches_per_licence_and_reports_detail(config):
    a = config.sources["aurora"]
    rows = [
        make_item(a, "https://aurora.example/gallery/1.jpg", licence="CC-BY-4.0"),
        make_item(a, "https://aurora.example/gallery/2.jpg", licence="CC-BY-ND-4.0"),
        make_item(a, "https://aurora.example/gallery/3.jpg", licence="CC-BY-ND-4.0"),
    ]
    step = LicenceFilter(["CC-BY-4.0"])
    kept, excluded = step(_table(rows))
    assert kept.num_rows == 1
    assert (
        excluded.column("detail").to_pylist()
        == ["CC-BY-ND-4.0 is not allowed (allow list: CC-BY-4.0)"] * 2
    )
    assert set(step.verdicts) == {"CC-BY-4.0", "CC-BY-ND-4.0"}


def test_dedupe_is_independent_of_input_order(config):
    a, c = config.sources["aurora"], config.sources["cedar"]
    rows = [
        make_item(c, "https://cedar.example/gallery/a.jpg", content=b"1"),
        make_item(a, "https://aurora.example/gallery/z.jpg", content=b"1"),
        make_item(a, "https://aurora.example/gallery/m.jpg", content=b"2"),
    ]
    for order in (rows, rows[::-1]):
        kept, excluded = DedupeFilter()(_table(order))
        assert sorted(kept.column("url").to_pylist()) == [
            "https://aurora.example/gallery/m.jpg",
            "https://aurora.example/gallery/z.jpg",
        ]
        assert excluded.column("url").to_pylist() == ["https://cedar.example/gallery/a.jpg"]
        assert excluded.column("reason").to_pylist() == ["duplicate"]


def test_default_chain_order(config):
    names = [f.name for f in default_filters(config, date.today(), set())]
    assert names == ["consent", "latest", "takedown", "optouts", "licence", "dedupe"]


def test_licence_filter_no_licence_for_missing_or_unlisted_licence_ref():
    step = LicenceFilter(["CC-BY-4.0", "LicenseRef-CC-BY-2.0-DE"])
    assert step.filter({"licence": None}) == (
        False, "no_licence", "no licence (allow list: CC-BY-4.0, LicenseRef-CC-BY-2.0-DE)"
    )
    assert step.filter({"licence": "  "})[:2] == (False, "no_licence")
    ref = "LicenseRef-example.com-terms-0123456789"
    verdict = step.filter({"licence": ref})
    assert verdict[:2] == (False, "no_licence")
    assert ref in verdict[2] and "allow list: CC-BY-4.0" in verdict[2]
    # Listed verbatim: kept. An SPDX licence outside the list: licence_not_allowed.
    assert step.filter({"licence": "LicenseRef-CC-BY-2.0-DE"}) is True
    assert step.filter({"licence": "CC-BY-2.0"})[:2] == (False, "licence_not_allowed")
    # A ref beside an SPDX licence that is not allowed is a licence decision, not "none".
    assert step.filter({"licence": f"{ref} AND CC-BY-NC-4.0"})[:2] == (
        False, "licence_not_allowed"
    )
    assert step.filter({"licence": "Totally-Free-1.0"})[:2] == (False, "licence_not_allowed")


def test_licence_filter_detail_names_the_preset(tmp_path):
    from helpers_config import settings_doc

    settings = settings_doc(allow=("MIT",))
    settings["licences"]["preset"] = "commercial-ai-training"
    config = write_config(tmp_path / "p", [source_doc("aurora")], settings)
    step = next(f for f in default_filters(config, date.today(), set()) if f.name == "licence")
    assert isinstance(step, LicenceFilter)
    assert step.filter({"licence": "CC-BY-SA-3.0-DE"}) is True
    assert step.filter({"licence": "CC0-1.0"}) is True
    assert step.filter({"licence": "MIT"}) is True
    assert step.filter({"licence": "CC-BY-NC-4.0"}) == (
        False,
        "licence_not_allowed",
        "CC-BY-NC-4.0 is not allowed (preset commercial-ai-training; allow list: MIT)",
    )
    assert step.filter({"licence": "CC-BY-ND-4.0"})[:2] == (False, "licence_not_allowed")
    assert step.filter({"licence": "LicenseRef-CC-BY-2.0-DE"})[:2] == (False, "no_licence")
