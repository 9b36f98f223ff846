"""`make bench`: how fast the project copies one table, measured against a ceiling and a peer.

Run from the project directory with the project's venv:

    .venv/bin/python -m bench                # 1,000,000 rows (the size the targets speak of)
    .venv/bin/python -m bench --quick        # 100,000 rows
    .venv/bin/python -m bench --rows 250000 --profile --out bench-results/250k.json
    .venv/bin/python -m bench --planning-only  # chunk planning at 1M and 10M rows, nothing else

What it measures, one table (`bench.orders`, 10 columns of mixed types, built once and cached):

* ceiling: the `mariadb --quick` client dumping the table to /dev/null (best of two runs);
* this project, end to end over the local stack (moto, the real handlers, MariaDB, the Snowflake
  emulator), full mode with 1 and with 2 workers: the wall time of `LocalStack.run()`;
* the peer: dlt's sql_database source (pyarrow backend) into DuckDB, in a venv of its own;
* planning the chunk bounds of tables of 1M and 10M rows (and the old OFFSET walk, for comparison);
* an incremental run after 1,000 rows changed, planning time, and the peak resident memory of
  the process that runs the local stack for several chunk sizes;
* change data capture: a cdc run after 1,000 and after 100,000 changed rows (updates that move the
  watermark, so an incremental run sees them too; 4 bulk statements, timed), against incremental runs of
  the same changes, the reader alone, and a sustained writer with cdc back to back (lag from commit to
  visible); issue 29's targets with their ratios (``--no-cdc`` skips it, ``--cdc-only`` runs only it).

Every stack run happens in a fresh child process (``python -m bench --child SPEC``), so runs do not
share interpreter state and each child's peak memory is its own. The servers live under
.local/bench and are stopped at the end (unless --keep-servers).

Where each part lives:

* ``cli`` the options and which measures they run; ``suite`` the whole bench in order; ``report`` its report
  and ratios; ``output`` progress, figures, target verdicts and the results file;
* ``settings`` paths, sizes and the issues' targets; ``servers`` MariaDB and the emulator, and connections
  from their URLs; ``orders`` the measured table and the statements that change it; ``usage`` the CPU and
  memory of processes; ``children`` a stack run in a child process of its own;
* one module per measure: ``baselines`` (the ceiling and dlt), ``copies`` (full and incremental runs, memory),
  ``finaliser``, ``read_cpu`` (the source's and the worker's CPU), ``small_tables``, ``planning``, ``cdc``
  with ``cdc_sustained`` and ``cdc_tables`` (a window of many changed tables), ``phases`` (``--profile``).
"""
