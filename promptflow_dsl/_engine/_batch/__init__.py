"""Batch mode: a run's calls go through the providers' batch APIs at half the price.

The engine sends each call as it would online; LiteLLM builds the request, and a
transport (:mod:`._transport`) hands it to the :class:`Batcher`, which gathers requests
into batches (:mod:`._clients`, the official SDKs), notes them in a :class:`BatchLedger`,
and answers each request when its batch ends.
"""

from ._batcher import Batcher, BatchOptions, Lane, tell_running_batches
from ._clients import Answer, BatchState, Lost, batch_client, check_batchable
from ._ledger import BatchLedger, SubmittedBatch
from ._transport import COUNTED_HEADER, BatchClients, batch_custom_id, batch_key

__all__ = [
    "COUNTED_HEADER",
    "Answer",
    "BatchClients",
    "BatchLedger",
    "BatchOptions",
    "BatchState",
    "Batcher",
    "Lane",
    "Lost",
    "SubmittedBatch",
    "batch_client",
    "batch_custom_id",
    "batch_key",
    "check_batchable",
    "tell_running_batches",
]
