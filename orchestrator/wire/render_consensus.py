"""ReconciliationResult (retab.types.consensus), the body of POST /v1/consensus."""

from __future__ import annotations

from typing import Any

from orchestrator.core.consensus.reconcile import Reconciliation


def reconciliation(r: Reconciliation) -> dict[str, Any]:
    a = r.alignment
    return {
        "object": "consensus",
        "consensus": r.consensus,
        "likelihoods": r.likelihoods,
        "fields": [
            {
                "path": f.path,
                "value": f.value,
                "likelihood": f.likelihood,
                "supporting_input_count": f.supporting_input_count,
                "total_input_count": f.total_input_count,
            }
            for f in r.fields
        ],
        # `alignment` is required by the SDK's model; its lists are null unless include_alignment was asked.
        "alignment": {
            "reference_index": a.reference_index,
            "aligned_inputs": a.aligned_inputs,
            "path_alignments": None
            if a.path_alignments is None
            else [{"canonical_path": p, "source_paths": sources} for p, sources in a.path_alignments],
        },
    }
