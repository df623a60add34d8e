"""atheris harness for the run_config parser (see _harness.py): `fuzz_run_config.py -atheris_runs=N CORPUS_DIR`."""

from _harness import main

if __name__ == "__main__":
    main("run_config")
