"""Documents to instructions to responses.

Each document yields three user queries (Self-Instruct); each query becomes its own row
and gets a response. Input column: ``input``. Output columns: ``input``, ``instruction``,
``generation``, ``model_name`` (plus ``usage`` and ``error``).

    promptflow run recipes/self_instruct.py --input recipes/data/documents.jsonl \\
        --output out/self_instruct.parquet
"""

from promptflow_dsl import explode, self_instruct, text_generation

recipe = (
    self_instruct.step(num_instructions=3)
    >> explode("instructions", into="instruction")
    >> text_generation.step()
)
