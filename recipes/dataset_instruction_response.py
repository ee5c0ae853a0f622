"""Documents to instructions to responses, the response written with its document.

Input column: ``input``. Output columns: ``instruction``, ``response``, ``conversation``,
``model_name`` (plus ``system_prompt``, ``usage`` and ``error``).

    promptflow run recipes/dataset_instruction_response.py \\
        --input recipes/data/documents.jsonl --output out/instruction_response.parquet

The reference model is Llama 3.1 8B Instruct on Hugging Face inference:
add ``--model huggingface/meta-llama/Meta-Llama-3.1-8B-Instruct`` with ``HF_TOKEN`` set.
"""

from promptflow_dsl.pipelines import dataset_instruction_response

recipe = dataset_instruction_response(model=None, num_instructions=2)  # model: the CLI's --model
