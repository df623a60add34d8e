"""atheris harness for the corpus_yaml parser (see _harness.py): `fuzz_corpus_yaml.py -atheris_runs=N CORPUS_DIR`."""

from _harness import main

if __name__ == "__main__":
    main("corpus_yaml")
