"""The price catalog (#24): every row names the file its figure was read from, pinned to a
commit, and the date that file states; no row is kept without them (a figure written from
memory has neither), each machine type is priced once, and only types aicp can build."""

from __future__ import annotations

import datetime
import re

from aicp.components.accelerators import OFFERINGS
from aicp.components.prices import PRICES

# A file in a public repository at one commit: what a reader opens to check the figure.
PINNED = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+/blob/[0-9a-f]{40}/\S+$")


def test_every_row_names_a_pinned_source_the_date_it_states_and_its_region():
    for row in PRICES:
        assert PINNED.match(row.source), row
        assert datetime.date.fromisoformat(row.as_of), row
        assert row.region and row.usd_per_hour > 0, row


def test_each_type_is_priced_once_and_is_one_aicp_builds():
    keys = [(p.target, p.machine_type) for p in PRICES]
    assert len(keys) == len(set(keys))
    assert set(keys) <= {(o.target, o.machine_type) for o in OFFERINGS}


def test_a_cloud_reads_one_source_in_one_region():
    # ``aicp plan`` names one source line per source: a cloud's rows must not mix regions or
    # dates under one source, or the line would misstate some of them.
    for target in {p.target for p in PRICES}:
        rows = [p for p in PRICES if p.target == target]
        assert len({(p.source, p.region, p.as_of) for p in rows}) == 1, target
