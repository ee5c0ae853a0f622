"""The engine: the interpreter of prompt programs, the executor, the model layer."""
