"""Store contract: workflows, blocks, edges, saved checks, experiments and files — each write one
transaction, errors that name what is missing or taken, and cursor pagination in both directions."""

from __future__ import annotations

import hashlib

import pytest

from orchestrator.errors import Conflict, Gone, NotFound, Unprocessable
from orchestrator.store import Store
from orchestrator.store.records import FileQuery, PageRequest


async def test_workflow_blocks_and_edges(store: Store) -> None:
    wf = await store.workflows.create_workflow(name="Invoices", description="d", project_id="p")
    blocks = await store.workflows.all_blocks(wf["id"])
    assert [b["type"] for b in blocks] == ["start_document"], "a workflow starts with its document block"
    ex = await store.workflows.create_block(wf["id"], {"id": "blk_x", "type": "extract", "config": {"model": "m"}})
    assert (ex["config"], ex["workflow_id"]) == ({"model": "m"}, wf["id"])
    with pytest.raises(Conflict):
        await store.workflows.create_block(wf["id"], {"id": "blk_x", "type": "extract"})
    edge = await store.workflows.create_edge(wf["id"], {"source_block": blocks[0]["id"], "target_block": "blk_x"})
    with pytest.raises(NotFound):
        await store.workflows.create_edge(wf["id"], {"source_block": "nope", "target_block": "blk_x"})
    updated = await store.workflows.update_block("blk_x", {"config": {"model": "n"}, "label": "Extract"})
    assert (updated["config"], updated["label"]) == ({"model": "n"}, "Extract")
    assert (await store.workflows.get_workflow(wf["id"]))["updated_at"] >= wf["updated_at"]
    await store.workflows.delete_block("blk_x")
    assert await store.workflows.all_edges(wf["id"]) == [], "deleting a block deletes its edges"
    with pytest.raises(NotFound):
        await store.workflows.get_edge(edge["id"])
    published = await store.workflows.set_published(wf["id"], {"version_id": "ver_1", "published_at": "t"})
    assert published["published"] == {"version_id": "ver_1", "published_at": "t"}
    renamed = await store.workflows.update_workflow(wf["id"], {"name": "Renamed"})
    assert (renamed["name"], renamed["published"]["version_id"]) == ("Renamed", "ver_1")
    await store.workflows.delete_workflow(wf["id"])
    for missing in (store.workflows.get_workflow(wf["id"]), store.workflows.update_workflow(wf["id"], {"name": "x"})):
        with pytest.raises(NotFound):
            await missing


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_cursor_pages_walk_forward_and_back(store: Store, order: str) -> None:
    ids = []
    for i in range(7):
        ids.append((await store.workflows.create_workflow(name=f"w{i}", description="", project_id="pg"))["id"])
    expected = ids if order == "asc" else list(reversed(ids))
    seen: list[str] = []
    after = None
    pages = []
    while True:
        page = await store.workflows.list_workflows(
            PageRequest(limit=3, order=order, after=after),  # type: ignore[arg-type]
            project_id="pg",
            sort_by="created_at",
        )
        seen += [r["id"] for r in page.rows]
        pages.append(page)
        if page.after is None:
            break
        after = page.after
    assert seen == expected and len(pages) == 3
    back = await store.workflows.list_workflows(
        PageRequest(limit=3, order=order, before=pages[-1].rows[0]["id"]),  # type: ignore[arg-type]
        project_id="pg",
        sort_by="created_at",
    )
    assert [r["id"] for r in back.rows] == expected[3:6]


async def test_checks(store: Store) -> None:
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    source = {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"a": 1}}}}
    assertion = {"target": {"path": "a"}, "condition": {"kind": "exists"}}
    made = [
        await store.checks.create(
            prefix="wfnodeeval", workflow_id=wf["id"], block_id=b, name=f"c{i}", source=source, assertion=assertion
        )
        for i, b in enumerate(["blk_a", "blk_a", "blk_b"])
    ]
    assert made[0]["id"].startswith("wfnodeeval_") and made[0]["source"] == source and made[0]["latest"] is None
    scoped = await store.checks.for_scope(wf["id"], check_id=None, block_id="blk_a")
    assert [c["id"] for c in scoped] == [c["id"] for c in made[:2]]
    one = await store.checks.for_scope(wf["id"], check_id=made[2]["id"], block_id=None)
    assert [c["id"] for c in one] == [made[2]["id"]]
    changed = await store.checks.update(made[0]["id"], {"name": "renamed", "assertion": {"condition": {"kind": "x"}}})
    assert (changed["name"], changed["assertion"]) == ("renamed", {"condition": {"kind": "x"}})
    with pytest.raises(NotFound, match="Test"):
        await store.checks.get(made[0]["id"], "wf_other", noun="Test")
    await store.checks.delete(made[0]["id"])
    with pytest.raises(NotFound):
        await store.checks.delete(made[0]["id"])


async def test_experiments_and_their_documents(store: Store) -> None:
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    docs = [{"handle_inputs": {"h": {"type": "json", "data": i}}, "provenance": {"n": i}} for i in range(3)]
    exp = await store.experiments.create(workflow_id=wf["id"], block_id="b", name="e", n_consensus=5, documents=docs)
    assert (exp["document_count"], exp["n_consensus"], exp["last_run_id"]) == (3, 5, None)
    stored = await store.experiments.documents(exp["id"])
    assert [d["position"] for d in stored] == [0, 1, 2]
    assert [d["handle_inputs"] for d in stored] == [d["handle_inputs"] for d in docs]
    assert [d["provenance"] for d in stored] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert (await store.experiments.document(stored[1]["id"]))["experiment_id"] == exp["id"]
    same = await store.experiments.update(exp["id"], name=None, n_consensus=None, documents=None)
    assert same["updated_at"] == exp["updated_at"], "an empty update changes nothing"
    changed = await store.experiments.update(exp["id"], name="f", n_consensus=7, documents=docs[:1])
    assert (changed["name"], changed["n_consensus"], changed["document_count"]) == ("f", 7, 1)
    assert changed["documents_fingerprint"] != exp["documents_fingerprint"]
    assert len(await store.experiments.documents(exp["id"])) == 1
    await store.experiments.delete(exp["id"])
    with pytest.raises(NotFound):
        await store.experiments.get(exp["id"])


async def test_file_upload_session(store: Store) -> None:
    data = b"hello invoice"
    digest = hashlib.sha256(data).hexdigest()
    up = await store.files.create_upload(
        filename="a.txt", size_bytes=len(data), mime_type="text/plain", sha256=None, ttl_s=60
    )
    with pytest.raises(NotFound):
        await store.files.get(up["id"])  # not complete yet
    with pytest.raises(Unprocessable):
        await store.files.complete(up["id"], None)  # no bytes yet
    await store.files.put_bytes(up["id"], b"short")
    with pytest.raises(Unprocessable, match="declared"):
        await store.files.complete(up["id"], None)
    await store.files.put_bytes(up["id"], data)
    with pytest.raises(Unprocessable, match="sha256"):
        await store.files.complete(up["id"], "0" * 64)
    done = await store.files.complete(up["id"], digest)
    assert (done["status"], done["sha256"], done["size_bytes"]) == ("complete", digest, len(data))
    assert await store.files.data(up["id"]) == data
    assert (await store.files.complete(up["id"], None))["status"] == "complete", "completing twice is harmless"
    with pytest.raises(Unprocessable):
        await store.files.put_bytes(up["id"], b"again")
    expired = await store.files.create_upload(filename="b", size_bytes=1, mime_type="x/y", sha256=None, ttl_s=-1)
    with pytest.raises(Gone):
        await store.files.put_bytes(expired["id"], b"x")
    direct = await store.files.create_complete(filename="c.txt", mime_type="text/plain", data=data)
    listed = await store.files.list_page(PageRequest(limit=10), FileQuery(filename="c.t"))
    assert [f["id"] for f in listed.rows] == [direct["id"]]
