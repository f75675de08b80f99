"""``engage score`` (rank a shortlist for planners) and
``engage serve`` (REST), thin over :mod:`serving`."""

from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Literal

import typer

from engage.common import (
    UsageError,
    arguments,
    check_output_file,
    parse_time,
    resolve_data_paths,
    uses_dask,
)
from engage.console import print_table, progress_bars, rich_stdout
from engage.options import (
    MODEL_HELP,
    Engine,
    ModelsDir,
    Partitions,
    Posts,
    Profiles,
    Scheduler,
    TrackingUri,
    port_number,
)
from engage.scale_commands import cmd_score_dask
from serving.limits import ServerLimits, machine_cpus

# engage score's first progress bar: the profiles, the posts, and the fee table and shortlist.
TABLES_READ = "candidate tables read"

app = typer.Typer()

SERVE_PORT = 5000  # MLflow's scoring-server default
# serving.planner's RANK_BY and POST_TYPES, spelled out for the type checker and so --help
# needs no import of the planner (a test keeps them the same).
RankBy = Literal["engagements", "rate", "cost", "p_reach"]
PostType = Literal["carousel", "image", "photo", "reel", "short", "video"]


CHAMPION = "models:/engagement@champion"
# Upper bounds of engage serve's limits: past them a value is a typo, not a setting.
MAX_WORKERS_PER_CPU = 4
MAX_BODY_MB = 4096
MAX_TIMEOUT_S = 86400


@app.command(
    help="Rank candidates by expected engagement (or cost per engagement with --fees) and "
    "write CSV, Excel or an HTML report.\n\n"
    "Score candidates as of now (or --as-of, or each profile's as_of column) and rank them. "
    "The output type follows the file ending: .csv, .csv.gz, .xlsx or .html (a "
    "self-contained report).",
    short_help="Rank candidates and write CSV, Excel or an HTML report.",
)
def score(
    out: Annotated[
        Path,
        typer.Option(
            help="Output file: .csv, .csv.gz, .xlsx or .html; with --engine dask a folder of "
            "unranked Parquet parts.",
        ),
    ],
    model: Annotated[
        str,
        typer.Option(
            help=f"{MODEL_HELP} The default is the registry's champion in --tracking-uri.",
        ),
    ] = CHAMPION,
    profiles: Profiles = None,
    posts: Posts = None,
    fees: Annotated[
        Path | None,
        typer.Option(
            help="Fee table (influencer, fee, optional currency): adds cost per engagement and "
            "ranks by it; also the shortlist unless --shortlist is given. With --engine dask "
            "the columns are added but the parts stay unranked.",
        ),
    ] = None,
    shortlist: Annotated[
        Path | None,
        typer.Option(
            help="Table with an 'influencer' column: score only these (names without a profile "
            "are listed as 'no profile'); also with --engine dask.",
        ),
    ] = None,
    top: Annotated[
        int | None,
        typer.Option(
            help="Keep the top N candidates in the output file, its summary and the console. "
            "Left out or 0: every candidate.",
        ),
    ] = None,
    rank_by: Annotated[
        RankBy | None,
        typer.Option(
            help="engagements (expected engagements per post), rate (engagement rate), cost "
            "(cost per engagement) or p_reach (chance of reaching --target-engagements). "
            "Left out: cost with --fees, else engagements.",
        ),
    ] = None,
    target_engagements: Annotated[
        float | None,
        typer.Option(
            help="Campaign KPI in engagements per post: adds p_reach, the chance the next post "
            "reaches it.",
        ),
    ] = None,
    post_type: Annotated[
        PostType | None,
        typer.Option(
            help="Format of the planned post (reel and short count as video). Left out: each "
            "creator's usual format. A post_type column in --shortlist sets it per candidate.",
        ),
    ] = None,
    sponsored: Annotated[
        bool,
        typer.Option(
            "--sponsored",
            help="The planned post is sponsored (left out: organic). A sponsored column in "
            "--shortlist (yes/no) sets it per candidate.",
        ),
    ] = False,
    show: Annotated[
        int | None,
        typer.Option(
            help="Rows to print on the console (0 prints none). Left out: --top, else 20."
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Backtest: score as of this time (ISO 8601) using only earlier posts. Left "
            "out: now, or the profiles' as_of column.",
        ),
    ] = None,
    models_dir: ModelsDir = Path("models"),
    tracking_uri: TrackingUri = None,
    engine: Engine = "pandas",
    scheduler: Scheduler = None,
    partitions: Partitions = None,
) -> int:
    return _score(arguments(locals()))


def _score(args: SimpleNamespace) -> int:
    import pandas as pd

    from features.contract import read_table
    from features.outputs import console_text
    from serving.planner import (
        CONSOLE_TEXT_COLUMNS,
        RANK_BY,
        apply_fees,
        check_output_path,
        console_rows,
        console_table,
        missing_optional_columns,
        model_identity,
        planned_post_inputs,
        planner_notes,
        range_notes,
        rank,
        read_candidates,
        read_planned_posts,
        stale_data_notes,
        summarise,
        unseen_platform_notes,
        write_output,
    )
    from serving.predictor import load_model
    from serving.report import MAX_REPORT_ROWS, ReportContext

    if uses_dask(args):
        return cmd_score_dask(args)
    try:
        kind = check_output_path(args.out)
    except ValueError as exc:
        raise UsageError(f"--out {exc}") from None
    check_output_file(args.out, "--out")
    if args.top is not None and args.top < 0:
        raise UsageError("--top must be 0 (every candidate) or more")
    if args.show is not None and args.show < 0:
        raise UsageError("--show must be 0 or more")
    show = args.show if args.show is not None else (args.top or 20)
    if args.target_engagements is not None and not (
        args.target_engagements > 0 and math.isfinite(args.target_engagements)
    ):
        raise UsageError(
            "--target-engagements must be a positive number of engagements per post, e.g. 5000"
        )
    # The planned post: the command line's values, where the shortlist's columns leave a
    # candidate open.
    plan = read_planned_posts(args.shortlist) if args.shortlist else None
    planned = planned_post_inputs(
        plan, args.post_type, True if args.sponsored else None, args.target_engagements
    )
    rank_by = args.rank_by or ("cost" if args.fees else "engagements")
    if rank_by == "cost" and not args.fees:
        raise UsageError("--rank-by cost needs --fees (a table of influencer, fee)")
    if rank_by == "p_reach" and planned["target_engagements"] is None:
        raise UsageError(
            "--rank-by p_reach needs --target-engagements N (or a target_engagements "
            "column in the shortlist)"
        )
    as_of = parse_time(args.as_of)
    predictor = load_model(args.model, models_dir=args.models_dir, tracking_uri=args.tracking_uri)
    identity = model_identity(predictor, str(args.model), args.tracking_uri)
    profiles_path, posts_path = resolve_data_paths(args)

    with progress_bars() as bars:
        candidates_given = bool(args.fees or args.shortlist)
        tables = 1 + (posts_path is not None) + candidates_given
        bars(TABLES_READ, 0, tables)
        profiles = read_table(profiles_path)
        bars(TABLES_READ, 1, tables)
        posts = None
        if posts_path is not None:
            posts = read_table(posts_path)
            bars(TABLES_READ, 2, tables)
        fees, shortlist = read_candidates(args.fees, args.shortlist)
        if candidates_given:
            bars(TABLES_READ, tables, tables)
        scored = predictor.score(
            profiles,
            posts,
            as_of,
            shortlist=shortlist,
            profiles_file=str(profiles_path),
            posts_file=str(posts_path),
            progress=bars.counter("candidates scored"),
            steps=bars if bars.drawn else None,
            **planned,
        )
    if scored.report.handled:
        print(console_text(scored.report.format(), keep_newlines=True), file=sys.stderr)
    table, fee_notes = apply_fees(scored.table, fees) if fees is not None else (scored.table, [])
    table = rank(table, by=rank_by)
    table["range_note"] = range_notes(table)

    kept = table.head(args.top) if args.top else table
    notes, technical = planner_notes(scored.report)
    warnings = stale_data_notes(
        scored.posts_date_range, as_of or pd.Timestamp.now(tz="UTC"), identity.trained_on
    )
    if "as_of" in profiles.columns and as_of is None:
        warnings = []  # one cutoff per candidate (a backtest): no single scoring time to compare
    warnings += unseen_platform_notes(table, predictor.trained_platforms)
    context = ReportContext(
        model_version=predictor.version,
        model_data_range=predictor.metadata.get("data_date_range") or (),
        posts_date_range=scored.posts_date_range,
        as_of=scored.as_of,
        interval_level=predictor.interval_level,
        ranked_by=RANK_BY[rank_by][2],
        measured_coverage=_measured_coverage(predictor.metadata, predictor.interval_level),
        notes=notes
        + fee_notes
        + missing_optional_columns(profiles, posts, predictor.metadata.get("input_columns")),
        generated=pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC"),
        model=identity,
        top=args.top or None,
        summary=summarise(kept, predictor.interval_level),
        technical=technical,
        warnings=warnings,
    )
    write_output(table, args.out, context)

    print(f"model {console_text(identity.label())}")
    print(f"  chosen as {console_text(identity.resolved)}")
    print(f"as of {scored.as_of}; ranked by {context.ranked_by}")
    for warning in warnings:
        print(f"warning: {warning}")
    for label, value in context.summary.lines() if context.summary else []:
        print(f"{label}: {console_text(value)}")
    for note in context.notes[len(notes) :]:
        print(f"note: {console_text(note)}")
    if show:
        print()
        if rich_stdout():
            rows = console_rows(kept, show, predictor.interval_level)
            print_table(list(rows.columns), rows.itertuples(index=False), left=CONSOLE_TEXT_COLUMNS)
        else:
            print(console_table(kept, show, predictor.interval_level))
        if len(kept) > show:
            print(f"... {len(kept) - show} more rows in the output file")
    if kind == "html" and len(kept) > MAX_REPORT_ROWS:
        print(
            f"note: the HTML report shows the first {MAX_REPORT_ROWS} "
            f"rows; write .csv or .xlsx for all {len(kept)}"
        )
    left_out = (
        f" (the top {args.top} of {len(table)} candidates; leave out --top for all)"
        if len(kept) < len(table)
        else ""
    )
    print(f"\nwrote {len(kept)} rows to {args.out}{left_out}")
    return 0


def _measured_coverage(metadata: dict, level: float) -> float | None:
    """Cross-validated interval coverage recorded by training, if the model carries it."""
    value = (metadata.get("metrics") or {}).get("model", {}).get(f"coverage_{100 * level:.0f}")
    return float(value) if isinstance(value, int | float) else None


_LIMITS = ServerLimits()


@app.command()
def serve(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    port: Annotated[
        int,
        typer.Option(
            parser=port_number,
            metavar="<port>",
            help="Port, 0 to 65535 (`make mlflow-ui` uses 5050, so both run).",
        ),
    ] = SERVE_PORT,
    host: Annotated[
        str, typer.Option(help="Interface to bind (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    models_dir: ModelsDir = Path("models"),
    tracking_uri: TrackingUri = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Server processes, each with its own copy of the model. Left out: one per "
            f"CPU, here {machine_cpus()}.",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(help="Seconds to answer a request, queueing included; later: 504."),
    ] = _LIMITS.request_timeout,
    max_body_mb: Annotated[
        float, typer.Option(help="Largest request body in MB; larger: 413.")
    ] = _LIMITS.max_body_bytes / 2**20,
    heavy_kb: Annotated[
        float,
        typer.Option(
            help="A body over this many KB is a heavy request: one at a time per worker, "
            "beside the light ones.",
        ),
    ] = _LIMITS.heavy_body_bytes / 2**10,
    heavy_queue: Annotated[
        int,
        typer.Option(help="Heavy requests that may wait per worker; more: 503 with Retry-After."),
    ] = _LIMITS.heavy_queue,
) -> int:
    """Serve the model over REST with MLflow's scoring server (/ping, /invocations)."""
    return _serve(arguments(locals()))


def _serve(args: SimpleNamespace) -> int:
    from features.artifact import redact
    from serving.rest import model_uri_for, serve_command, serve_env, stop_process_group

    limits, workers = server_limits(args)
    check_listen_address(args.host, args.port)
    with tempfile.TemporaryDirectory(prefix="engage-serve-") as workdir:
        uri = model_uri_for(str(args.model), args.models_dir, Path(workdir), args.tracking_uri)
        command = serve_command(args.port, args.host, workers)
        print(
            f"serving {args.model} ({redact(uri)}) on "
            f"http://{args.host}:{args.port}  (/ping, /invocations; Ctrl-C stops)",
            file=sys.stderr,
            flush=True,
        )
        print(
            f"{workers} worker(s); per worker: {limits.light_concurrency} "
            f"light + {limits.heavy_concurrency} heavy request(s) at a time "
            f"(heavy: body over {limits.heavy_body_bytes // 1024} "
            f"KB, {limits.heavy_queue} more may wait); "
            f"body at most {limits.max_body_bytes / 2**20:g} "
            f"MB, answer within {limits.request_timeout:g} s",
            file=sys.stderr,
            flush=True,
        )
        # Own process group, so stopping reaches every uvicorn worker.
        process = subprocess.Popen(
            command, env=serve_env(args.tracking_uri, uri, limits, workers), start_new_session=True
        )
        # SIGTERM (kill, timeout, a supervisor) must stop the server too, not orphan it.
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return process.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            stop_process_group(process)
            signal.signal(signal.SIGTERM, previous)


def server_limits(args: SimpleNamespace) -> tuple[ServerLimits, int]:
    """``engage serve``'s limit options, checked (exit 2 on a value that cannot work)."""

    workers = machine_cpus() if args.workers is None else args.workers
    if workers < 1:
        raise UsageError("--workers must be 1 or more")
    if workers > MAX_WORKERS_PER_CPU * machine_cpus():
        # Each worker holds its own copy of the model: thousands would exhaust memory, not serve.
        raise UsageError(
            f"--workers {workers}: at most {MAX_WORKERS_PER_CPU * machine_cpus()} on this machine "
            f"({MAX_WORKERS_PER_CPU} per CPU); the default is one per CPU"
        )
    # nan passes every comparison and inf cannot become a byte count: both are refused here.
    for option, value, most in (
        ("--max-body-mb", args.max_body_mb, MAX_BODY_MB),
        ("--heavy-kb", args.heavy_kb, MAX_BODY_MB * 2**10),
        ("--timeout", args.timeout, MAX_TIMEOUT_S),
    ):
        if not (math.isfinite(value) and 0 < value <= most):
            raise UsageError(
                f"{option} {value:g}: must be a positive number, at most {most:g}"
                " (--max-body-mb, --heavy-kb and --timeout must be positive)"
            )
    if args.heavy_queue < 0:
        raise UsageError("--heavy-queue must be 0 or more")
    limits = ServerLimits(
        max_body_bytes=int(args.max_body_mb * 2**20),
        heavy_body_bytes=int(args.heavy_kb * 2**10),
        request_timeout=args.timeout,
        heavy_queue=args.heavy_queue,
    )
    return limits, workers


def check_listen_address(host: str, port: int) -> None:
    """Refuse, before the model is loaded, an address the server could not listen on (a port in
    use, a host name that is not this machine's); the server's own failure would be exit 1."""

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"--host {host}: not an address of this machine ({exc})") from None
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            # As uvicorn binds: a port left in TIME_WAIT by a stopped server is usable.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise UsageError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
            "choose another --port (or --host), or stop what is using it"
        ) from None


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
