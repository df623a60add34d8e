"""atheris harness for the sidecar parser (see _harness.py): `fuzz_sidecar.py -atheris_runs=N CORPUS_DIR`."""

from _harness import main

if __name__ == "__main__":
    main("sidecar")
