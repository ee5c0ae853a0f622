"""Documents to DPO preference pairs.

Each document yields three user queries (Self-Instruct); each query gets four sampled
responses, which an UltraFeedback-style judge rates 1-5; the best and the worst response
(at least one point apart) become a chosen/rejected pair, written as TRL's DPO format.
Input column: ``input``. Output columns: ``prompt``, ``chosen``, ``rejected``.

    promptflow run recipes/preference_pairs.py --input recipes/data/documents.jsonl \\
        --output out/preference_pairs.jsonl

A query whose responses all got the same rating has no pair: its row keeps null
``chosen`` and ``rejected`` (run without the last step to see why, in ``notes``).
"""

from promptflow_dsl import (
    explode,
    preference_pairs,
    self_instruct,
    text_generation,
    to_training_format,
    ultrafeedback,
)

recipe = (
    self_instruct.step(num_instructions=3)
    >> explode("instructions", into="instruction")
    >> text_generation.step(num_generations=4)
    >> ultrafeedback.step()
    >> preference_pairs(min_margin=1.0)
    >> to_training_format("dpo")
)
