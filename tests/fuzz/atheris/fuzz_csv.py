"""atheris harness for the csv parser (see _harness.py): `fuzz_csv.py -atheris_runs=N CORPUS_DIR`."""

from _harness import main

if __name__ == "__main__":
    main("csv")
