"""The ``alliance`` command line: run flows, validate configs, measure de-identification.

Exit codes: 0 success; 1 error (a clear message, never a traceback); 2 usage error; 3 the run
completed but some input files or rows were quarantined (see ``quarantine.csv``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline import __version__
from pipeline.environment import configure_environment
from pipeline.errors import PipelineError

app = typer.Typer(
    name="alliance",
    help="Code what clients say about the working alliance: ingest, de-identify, segment, code, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Run config YAML (default: configs/runs/default.yaml).")
]


def _fail(err: PipelineError) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    for line in err.context.get("errors", [])[1:] if isinstance(err.context.get("errors"), list) else []:
        typer.echo(f"       {line}", err=True)
    raise typer.Exit(1)


@app.command()
def run(
    corpus: Annotated[Path, typer.Argument(help="Corpus folder (transcripts, interviews, feedback exports).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for this run.")],
    config: ConfigOpt = None,
    corpus_id: Annotated[str | None, typer.Option(help="Corpus name (default: config or folder name).")] = None,
    runner: Annotated[str | None, typer.Option("--runner", help="local | dask (default: the config's runner.kind).")
                      ] = None,
    dask_address: Annotated[str | None, typer.Option(
        "--dask-address", help="Scheduler of an existing Dask cluster, tcp://host:8786 (implies --runner dask).")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1,
                                                help="Worker processes of a temporary local Dask cluster.")] = None,
) -> None:
    """Run the main flow (code-corpus) on CORPUS and write the outputs to --out.

    The runner (docs/scale.md) decides where the batch tasks run; it never changes the outputs.
    """
    configure_environment()
    from pipeline.cli_progress import stage_progress
    from pipeline.config import load_run_config
    from pipeline.stages import preflight

    try:
        cfg = load_run_config(config)
        preflight(cfg)
        if not corpus.is_dir():
            raise PipelineError(f"corpus folder {str(corpus)!r} does not exist.", code="QA-E010", path=str(corpus))
        from flows.code_corpus import code_corpus
        from pipeline.runners import build_task_runner, with_overrides

        try:
            runner_cfg = with_overrides(cfg.runner, kind=runner, address=dask_address, workers=workers)
        except ValueError as e:
            from pipeline.errors import ConfigError

            raise ConfigError(f"invalid runner option: {e.errors()[0]['msg'] if hasattr(e, 'errors') else e}",
                              key="runner") from None
        if runner_cfg.address:  # remote workers need absolute paths (on a filesystem they share)
            corpus, out = corpus.resolve(), out.resolve()
        code_corpus = code_corpus.with_options(task_runner=build_task_runner(runner_cfg))
        stages_total = 8 + len(cfg.coders) + int(cfg.outputs.nvivo) + int(cfg.outputs.report) + \
            int(cfg.outputs.nvivo or cfg.outputs.report) + int(cfg.topics.enabled)
        with stage_progress(stages_total):
            result = code_corpus(str(corpus), str(out), str(config) if config else None, corpus_id)
    except PipelineError as err:
        _fail(err)
    _print_summary(result, out)
    ingest = result["reports"]["ingest"]["counts"]
    if ingest["quarantined_files"] or ingest["skipped_rows"]:
        raise typer.Exit(3)


def _print_summary(result: dict, out: Path) -> None:
    reports = result["reports"]
    ingest, seg = reports["ingest"]["counts"], reports["segment"]["counts"]
    total = sum(r.get("seconds") or 0 for r in reports.values())
    typer.echo(f"run {result['run_id']}: {ingest['documents']} documents from {ingest['files_read']} files, "
               f"{seg['segments']} segments, {reports['combine']['counts']['assignments']} code assignments "
               f"({total:.1f} s in stages)")
    if ingest["quarantined_files"] or ingest["skipped_rows"] or ingest["repaired_files"]:
        typer.secho(f"quarantined files: {ingest['quarantined_files']}, skipped rows: {ingest['skipped_rows']}, "
                    f"repaired files: {ingest['repaired_files']} -> see {out / 'quarantine.csv'}",
                    fg=typer.colors.YELLOW)
    if "report" in reports:
        typer.echo(f"report: {Path(reports['report']['paths']['report']).resolve()}  "
                   f"viewer: {Path(reports['report']['paths']['viewer']).resolve()}")
    typer.echo(f"outputs written to {out.resolve()}")


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Run configs and/or codebooks (YAML).")],
) -> None:
    """Check run configs and codebooks without running anything; errors give file:line:column and key."""
    from pipeline.codebook import load_codebook
    from pipeline.config import load_run_config
    from pipeline.yamlio import load_yaml

    failed = False
    for path in files:
        try:
            data = load_yaml(path)
            if isinstance(data, dict) and "codes" in data:
                cb = load_codebook(path)
                typer.echo(f"ok: {path} (codebook {cb.id} {cb.version}, {len(cb.codes)} codes)")
            else:
                cfg = load_run_config(path)
                cb = load_codebook(cfg.codebook)
                from pipeline.incoming.watch import check_alert_rules

                check_alert_rules(cfg, cb, path)
                typer.echo(f"ok: {path} (run config; codebook {cb.id} {cb.version}, {len(cb.codes)} codes)")
        except PipelineError as err:
            failed = True
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            errors = err.context.get("errors")
            for line in errors[1:] if isinstance(errors, list) else []:
                typer.echo(f"       {line}", err=True)
    if failed:
        raise typer.Exit(1)


@app.command("deid-report")
def deid_report(
    corpus: Annotated[Path, typer.Argument(help="Corpus folder with span labels or an answer key of identifiers.")],
    key: Annotated[
        Path | None, typer.Option(help="Answer key CSV (file,type,text); default CORPUS/identifiers.csv.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="Span labels CSV (file,record_key,start,end,type,text); default CORPUS/labels.csv."),
    ] = None,
    config: ConfigOpt = None,
    out: Annotated[Path | None, typer.Option(help="Write the report as JSON here.")] = None,
    show_misses: Annotated[
        bool, typer.Option(help="Print missed identifiers and false positives (corpora declared fictional only).")
    ] = False,
) -> None:
    """Measure de-identification per identifier type: recall and precision (span labels) or recall (key)."""
    configure_environment()
    from pipeline.config import load_run_config
    from pipeline.deid_eval import (
        evaluate_deidentification,
        evaluate_span_labels,
        format_report,
        format_span_report,
        is_fictional,
    )
    from pipeline.errors import ConfigError

    spans = labels is not None or (key is None and (corpus / "labels.csv").is_file())
    try:
        if show_misses and not is_fictional(corpus):
            raise ConfigError(
                "--show-misses prints identifier text; the corpus's README.md (or its parent's) must declare it "
                "fictional in its first line.", code="QA-E019", path=str(corpus))
        cfg = load_run_config(config)
        if spans:
            report = evaluate_span_labels(corpus, labels or corpus / "labels.csv", cfg)
        else:
            report = evaluate_deidentification(corpus, key or corpus / "identifiers.csv", cfg)
    except PipelineError as err:
        _fail(err)
    if spans:
        typer.echo(format_span_report(report, show_text=show_misses))
    else:
        typer.echo(format_report(report, show_misses=show_misses))
    if out:
        from pipeline.io import write_json

        hidden = {"misses", "false_positives", "negatives_hit"}
        public = {k: v for k, v in report.items() if k not in hidden}
        write_json(out, public)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder (from `alliance run`).")],
    to: Annotated[str, typer.Option("--to", help="qdpx | qdc | xlsx | all")] = "qdpx",
    out: Annotated[Path | None, typer.Option(help="Folder for the files (default RUN_DIR/exports).")] = None,
    min_score: Annotated[float, typer.Option(help="Lowest score exported.")] = 0.0,
    codes: Annotated[list[str] | None, typer.Option("--code", help="Export only these code ids (repeatable).")] = None,
) -> None:
    """Export a run for NVivo, ATLAS.ti, MAXQDA, QualCoder: REFI-QDA project or codebook, or a dataset sheet."""
    from pipeline.export import export_run

    try:
        written = export_run(run_dir, to=to, out=out, min_score=min_score, codes=codes or None)
    except PipelineError as err:
        _fail(err)
    for path in written:
        typer.echo(f"wrote {path}")


@app.command("import-qdpx")
def import_qdpx(
    qdpx: Annotated[Path, typer.Argument(help="A .qdpx project exported by NVivo, QualCoder or this project.")],
    out: Annotated[Path, typer.Option(help="Training CSV to write (document_id, speaker, text, codes).")],
    codebook: Annotated[Path | None, typer.Option(help="Codebook to map code names back to ids.")] = None,
) -> None:
    """Turn the human coding in a .qdpx into the training-data CSV (the NVivo round trip)."""
    from pipeline.codebook import load_codebook
    from pipeline.export.qdpx_import import qdpx_to_training_csv, read_qdpx

    try:
        project = read_qdpx(qdpx)
        cb = load_codebook(codebook) if codebook else None
        qdpx_to_training_csv(project, out, codebook=cb)
    except PipelineError as err:
        _fail(err)
    typer.echo(f"wrote {out}: {len(project.selections)} coded selections from {len(project.sources)} sources")


CodebookOpt = Annotated[Path | None, typer.Option(help="Codebook YAML (default: the project's codebook).")]


def _codebook(path: Path | None):  # noqa: ANN202
    """Load the given codebook or the default run config's."""
    from pipeline.codebook import load_codebook
    from pipeline.config import load_run_config

    return load_codebook(path or load_run_config(None).codebook)


@app.command()
def train(
    gold: Annotated[Path, typer.Option(help="Human coding: training CSV or a .qdpx from NVivo/QualCoder.")],
    model_out: Annotated[Path, typer.Option(help="Folder for the trained model and its model card.")],
    codebook: CodebookOpt = None,
    embedding_backend: Annotated[
        str | None, typer.Option(help="Add embeddings: embed.static.v1 | embed.minilm.v1")
    ] = None,
    context: Annotated[bool, typer.Option(help="Use the previous segment as context features.")] = False,
) -> None:
    """Train the supervised classifier coder from human coding (saved with skops and a model card)."""
    configure_environment()
    from pipeline.training import train_model

    try:
        card = train_model(gold, _codebook(codebook), model_out, embedding_backend=embedding_backend,
                           context=context)
    except PipelineError as err:
        _fail(err)
    cv = card.get("cv", {}).get("macro", {})
    typer.echo(f"trained {card['coder']} on {card['training_data'].get('human_segments')} human-coded segments; "
               f"grouped out-of-fold macro F1 {cv.get('f1', float('nan')):.3f}; model in {model_out}")


@app.command()
def evaluate(
    gold: Annotated[Path, typer.Option(help="Held-out human coding (CSV or .qdpx).")],
    out: Annotated[Path, typer.Option(help="metrics.json to write.")],
    model: Annotated[Path | None, typer.Option(help="A trained model folder; omit with --cv.")] = None,
    cv: Annotated[int, typer.Option(help="Instead of a model: K-fold cross-validation grouped by document.")] = 0,
    codebook: CodebookOpt = None,
) -> None:
    """Agreement with human coding: per code and macro kappa, alpha, precision, recall, F1 with bootstrap CIs."""
    configure_environment()
    from pipeline.io import write_json
    from pipeline.training import cross_validate, evaluate_model

    if (model is None) == (cv == 0):
        typer.secho("error: give exactly one of --model DIR or --cv K.", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        cb = _codebook(codebook)
        metrics = evaluate_model(model, gold, cb) if model else cross_validate(gold, cb, n_splits=cv)
    except PipelineError as err:
        _fail(err)
    write_json(out, metrics)
    m = metrics["macro"]
    typer.echo(f"macro F1 {m['f1']:.3f}, kappa {m['kappa']:.3f}, alpha {m['alpha']:.3f}, precision "
               f"{m['precision']:.3f}, recall {m['recall']:.3f} (n={m['n']}); written to {out}")


@app.command()
def suggest(
    model: Annotated[Path, typer.Option(help="A trained model folder.")],
    run_dir: Annotated[Path, typer.Argument(help="A run folder (alliance run) whose segments to rank.")],
    n: Annotated[int, typer.Option(help="How many segments to suggest.")] = 50,
    out: Annotated[Path | None, typer.Option(help="CSV to write (default RUN_DIR/suggest_next.csv).")] = None,
    gold: Annotated[Path | None, typer.Option(help="Already-coded segments to leave out (CSV).")] = None,
    codebook: CodebookOpt = None,
) -> None:
    """Rank the segments whose human coding would most improve the model (uncertainty and diversity)."""
    configure_environment()
    from pipeline.io import read_table, write_csv
    from pipeline.schema import SEGMENT
    from pipeline.training import load_gold, suggest_segments

    try:
        cb = _codebook(codebook)
        segments = read_table(run_dir / "segments.parquet", SEGMENT)
        done = set(load_gold(gold, cb)[0]["segment_id"]) if gold else set()
        ranked = suggest_segments(model, segments, cb, n=n, exclude=done)
    except PipelineError as err:
        _fail(err)
    except FileNotFoundError:
        _fail(PipelineError(f"{run_dir} has no segments.parquet; run `alliance run` first.", code="QA-E010"))
    texts = segments.set_index("segment_id")["text"]
    target = out or run_dir / "suggest_next.csv"
    write_csv(target, [*ranked.columns, "text"], ([*r, texts[r[0]]] for r in ranked.itertuples(index=False)))
    typer.echo(f"wrote {len(ranked)} suggestions to {target}")


@app.command("ingest-incoming")
def ingest_incoming(
    inbox: Annotated[Path, typer.Argument(help="Inbox folder: one sub-folder per feed (exports and files).")],
    store: Annotated[Path, typer.Option("--store", help="Store folder: ledger, coded segments, exports.")],
    config: ConfigOpt = None,
    ledger_url: Annotated[str | None, typer.Option(
        "--ledger-url", help="SQLAlchemy URL of the ledger (default: incoming.ledger_url, $ALLIANCE_LEDGER_URL, "
        "else SQLite in the store).")] = None,
) -> None:
    """Run one incremental pass over INBOX by hand; the last line printed is a JSON summary.

    Exit code 0, or 3 when this pass quarantined items (see the ledger's reasons).
    """
    import json

    configure_environment()
    from pipeline.config import load_run_config
    from pipeline.incoming.passes import incoming_pass

    try:
        cfg = load_run_config(config)
        summary = incoming_pass(inbox, store, cfg, ledger_url=ledger_url)
    except PipelineError as err:
        _fail(err)
    typer.echo(json.dumps(summary, sort_keys=False))
    if summary["quarantined"]:
        raise typer.Exit(3)


@app.command()
def serve(
    inbox: Annotated[Path, typer.Argument(help="Inbox folder the scheduled passes read.")],
    store: Annotated[Path, typer.Option("--store", help="Store folder the passes write (ledger, coded, reports).")],
    config: ConfigOpt = None,
    api_url: Annotated[str | None, typer.Option(
        "--api-url", help="Prefect API to use (default: $PREFECT_API_URL if it answers, else start a local server).",
    )] = None,
    once: Annotated[bool, typer.Option(help="Register the deployment, run one pass now and exit.")] = False,
) -> None:
    """Serve the incoming-feedback deployment on the config's cron schedule (Ctrl-C or SIGTERM stops it).

    Starts a local Prefect server (SQLite in $PREFECT_HOME, 127.0.0.1) unless a Prefect API answers, and
    stops it again on exit; the schedule stays active for the next start. See docs/serve.md.
    """
    from pipeline.incoming.serve import serve_incoming

    try:
        info = serve_incoming(inbox, store, config, api_url=api_url, once=once, echo=typer.echo)
    except PipelineError as err:
        _fail(err)
    if once and info["run"] is not None:
        import json

        typer.echo(json.dumps(info["run"], sort_keys=False))


@app.command()
def topics(
    corpus: Annotated[Path, typer.Argument(help="Corpus folder (ingested, de-identified and segmented first) "
                                                "or a finished run folder (holding segments.parquet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (may be the run folder itself).")],
    config: ConfigOpt = None,
    reference: Annotated[Path | None, typer.Option(
        help="A finished run folder: fit on its segments (same config and seed), only transform CORPUS and "
             "write topic_drift.json.")] = None,
    corpus_id: Annotated[str | None, typer.Option(help="Corpus name (default: config or folder name).")] = None,
) -> None:
    """Emergent themes (BERTopic): topics.parquet, topics.html, candidate_themes.csv, prevalence over time."""
    configure_environment()
    import json

    from pipeline.config import load_run_config

    try:
        cfg = load_run_config(config)
        if not corpus.is_dir():
            raise PipelineError(f"corpus folder {str(corpus)!r} does not exist.", code="QA-E010", path=str(corpus))
        if reference is not None and not (reference / "segments.parquet").is_file():
            raise PipelineError(f"reference {str(reference)!r} is not a run folder (no segments.parquet).",
                                code="QA-E010", path=str(reference))
        from pipeline.topics.stage import topics_for_run

        if (corpus / "segments.parquet").is_file():
            manifest = corpus / "manifest.json"
            run_id = json.loads(manifest.read_text("utf-8")).get("run_id", "") if manifest.is_file() else ""
            report = topics_for_run(cfg, corpus, run_id, out_dir=out, reference=reference)
        else:
            from pipeline import stages
            from pipeline.manifest import plan_run

            cid = corpus_id or cfg.corpus_id or corpus.resolve().name
            run_id = plan_run(corpus, cfg, corpus_id=cid).run_id
            stages.ingest_and_deidentify(corpus, cfg, out, corpus_id=cid)
            stages.segment_documents(cfg, out)
            report = topics_for_run(cfg, out, run_id, reference=reference)
    except PipelineError as err:
        _fail(err)
    c = report["counts"]
    typer.echo(f"topics: {c['topics']} topics on {c['fitted_segments']} segments ({c['mapped_topics']} match a code, "
               f"{c['candidate_themes']} candidate themes); outliers {c['outlier_share_before']:.1%} -> "
               f"{c['outlier_share_after']:.1%} ({report['seconds']:.1f} s)")
    if "js_distance" in c:
        typer.echo(f"drift against {reference}: Jensen-Shannon distance {c['js_distance']}")
    typer.echo(f"outputs written to {out.resolve()}")


@app.command()
def version() -> None:
    """Print the pipeline version."""
    typer.echo(f"alliance {__version__}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except PipelineError as err:  # pragma: no cover - commands handle their own
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
