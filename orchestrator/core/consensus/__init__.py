"""Consensus over the n passes of one child: alignment, typed voting, likelihoods (spec §4)."""

from __future__ import annotations

from orchestrator.core.consensus.extract import VoteRow
from orchestrator.core.consensus.reduce import BlockType, ConsensusRecord, reduce_passes

__all__ = ["BlockType", "ConsensusRecord", "VoteRow", "reduce_passes"]
