"""``simpool landscape``: Table 1 generated from what each registered pool declares."""

from __future__ import annotations

import pytest

from simpool.cli import main
from simpool.pooling import list_pools
from simpool.pooling.framework import Components, components_of
from simpool.pooling.landscape import format_landscape, landscape_rows
from simpool.pooling.registry import _POOLS


def test_markdown_has_one_row_per_registered_pool_with_its_components(capsys):
    assert main(["landscape"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    body = lines[2:]
    assert len(body) == len(list_pools())
    for name in list_pools():
        components = components_of(name, _POOLS[name])
        assert isinstance(components, Components), f"{name} declares no components"
        (row,) = [line for line in body if f"(`{name}`)" in line]
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0] == str(components.group)
        assert cells[4:] == [components.k, components.u0, components.phi_q, components.phi_k,
                             components.similarity, components.attention, components.phi_v, components.f,
                             components.phi_x, components.phi_u]  # fmt: skip


def test_table_1_entries_from_the_paper():
    rows = dict(landscape_rows())
    assert rows["kmeans"].attention == "η2(argmax1(S))" and rows["kmeans"].iterative
    assert rows["otk"].similarity == "−‖x−y‖²"
    assert rows["se"].u0 == rows["cbam"].u0 == rows["simpool"].u0 == "πA(X)"
    assert rows["vit"].phi_x == "MLP(MSA(X))" and rows["cait"].phi_x == "X"
    assert [rows[n].group for n in ("gap", "slot", "ge", "cait", "simpool")] == [1, 2, 3, 4, 5]


def test_a_newly_registered_pool_adds_a_row(monkeypatch):
    class Dummy:
        components = Components("Dummy", 9, attention="1p/p")

    monkeypatch.setitem(_POOLS, "dummy", Dummy)
    text = format_landscape(landscape_rows(), "text")
    (row,) = [line for line in text.splitlines() if "Dummy (`dummy`)" in line]
    assert row.startswith("9  ") and "1p/p" in row
    assert len(text.splitlines()) == len(list_pools()) + 1


def test_subset_and_unknown_pool(capsys):
    assert main(["landscape", "--format", "text", "--pools", "gap", "simpool"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    with pytest.raises(ValueError, match="valid pools"):
        landscape_rows(["gap", "nope"])
