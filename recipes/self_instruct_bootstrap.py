"""The Self-Instruct paper's bootstrap, end to end (Wang et al., arXiv 2212.10560).

The frame is the task pool. It starts as the seed tasks (the input: ``instruction`` and
``is_classification``); each round samples few-shot prompts from it (up to 2 machine
tasks and the rest seeds, 8 in all), asks a completion model to continue the numbered
list, keeps the new instructions that pass the paper's filters, drops near-duplicates
(ROUGE-L above 0.7 against everything kept so far) and adds the rest to the pool, until
the pool holds ``TARGET`` machine instructions. Then each machine instruction is
identified as classification or not, gets input/output instances (output-first for
classification), and the instances become the paper's prompt/completion fine-tuning pairs.

    promptflow run recipes/self_instruct_bootstrap.py \\
        --input recipes/data/seed_tasks.jsonl --output out/bootstrap.jsonl

``bootstrap`` (the loop alone) and the steps are importable for other exports: swap the
last step for ``to_training_format("chat")`` or ``to_training_format("alpaca")``.

For the paper's setting use a completion model, e.g. ``--model text-completion-openai/davinci-002``
(the paper used GPT-3 davinci) or a base model on a vLLM server.
"""

import polars as pl

from promptflow_dsl import (
    bootstrap_instructions,
    choose,
    dedup_rouge_l,
    explode,
    extend,
    filter,
    generate_instances,
    identify_classification,
    repeat_until,
    sample_bootstrap_prompts,
    select,
    to_training_format,
    unnest,
)

TARGET = 40  # machine instructions to reach (the paper went to 52,000)
machine = pl.col("origin") == "machine"

one_round = (
    sample_bootstrap_prompts(num_prompts=4)
    >> bootstrap_instructions.step()
    >> explode("new_instructions", into="instruction")
    >> filter(pl.col("instruction").is_not_null())
    >> select("instruction")
    >> choose("machine", into="origin")
)

bootstrap = choose("seed", into="origin") >> repeat_until(
    extend(one_round) >> dedup_rouge_l(candidates=machine),
    until=lambda pool: pool.filter(machine).height >= TARGET,
    max_rounds=50,
)

recipe = (
    bootstrap
    >> filter(machine)
    >> identify_classification.step()
    >> generate_instances.step(inputs={"classification": "is_classification"})
    >> explode("instances", into="instance")
    >> filter(pl.col("instance").is_not_null())
    >> unnest("instance", fields=("input", "output"))
    >> to_training_format("prompt_completion", input="input")
)
