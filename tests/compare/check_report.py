#!/usr/bin/python3
"""Checks the files `conduit compare --json J --csv C --svg S` wrote.

Usage: check_report.py JSON CSV SVG KEY[,KEY...]
Exits 0 when every listed mechanism is present with every figure positive and
finite (or a reported size cap), the CSV has the same figures, and the SVG is
well-formed XML; otherwise prints what is wrong and exits 1.
"""
import csv
import json
import math
import sys
import xml.etree.ElementTree as ElementTree

problems = []


def positive(value, where):
    if not isinstance(value, (int, float)) or isinstance(value, bool) \
            or not math.isfinite(value) or value <= 0:
        problems.append(f"{where}: {value!r} is not a positive finite number")


def check_outcome(outcome, where, kind):
    if outcome is None:
        problems.append(f"{where}: no figure")
        return 0
    if "capped_at" in outcome:
        positive(outcome["capped_at"], where + ".capped_at")
        return 0
    if "error" in outcome:
        problems.append(f"{where}: failed: {outcome['error']}")
        return 0
    if kind == "latency":
        for field in ("p50_us", "p99_us", "p999_us", "max_us", "samples", "size"):
            positive(outcome.get(field), f"{where}.{field}")
        if not outcome["p50_us"] <= outcome["p99_us"] <= outcome["p999_us"] <= outcome["max_us"]:
            problems.append(f"{where}: percentiles out of order: {outcome}")
    else:
        for field in ("messages", "seconds", "messages_per_second", "megabytes_per_second", "size"):
            positive(outcome.get(field), f"{where}.{field}")
    return 1


def main():
    json_path, csv_path, svg_path, keys = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    with open(json_path) as f:
        report = json.load(f)
    machine = report["machine"]
    if not machine["cpu_model"] or machine["cpus_online"] < 1 or not machine["kernel"]:
        problems.append(f"machine description incomplete: {machine}")
    for field in ("memcpy_gb_per_second", "cache_line_round_trip_us",
                  "cache_line_round_trip_end_us", "clock_overhead_ns"):
        positive(report["limits"][field], "limits." + field)
    rows = {row["key"]: row for row in report["rows"]}
    figures = 0
    for key in keys.split(","):
        row = rows.get(key)
        if row is None:
            problems.append(f"mechanism {key} is missing from the report")
            continue
        if len(row["latency"]) != len(report["options"]["latency_sizes"]) or \
                len(row["throughput"]) != len(report["options"]["throughput_sizes"]):
            problems.append(f"{key}: not every size was measured")
        for i, measured in enumerate(row["latency"]):
            figures += check_outcome(measured["conduit"], f"{key}.latency[{i}].conduit", "latency")
            figures += check_outcome(measured["raw"], f"{key}.latency[{i}].raw", "latency")
        for i, measured in enumerate(row["throughput"]):
            figures += check_outcome(measured["conduit"], f"{key}.throughput[{i}].conduit", "throughput")
            figures += check_outcome(measured["raw"], f"{key}.throughput[{i}].raw", "throughput")
    for key in keys.split(","):
        if key.startswith("jsonrpc-") and key in rows:
            positive(rows[key]["extra"].get("bytes_on_wire_per_call_64B"),
                     f"{key}.extra.bytes_on_wire_per_call_64B")
    if not report["verdicts"]:
        problems.append("no verdicts on the seed's claims")
    with open(csv_path, newline="") as f:
        lines = list(csv.DictReader(f))
    for line in lines:
        positive(float(line["value"]), f"csv {line['key']} {line['metric']} {line['size']}")
    latency_lines = [line for line in lines if line["metric"] == "latency_p50"]
    throughput_lines = [line for line in lines if line["metric"] == "throughput" and line["unit"] == "MB/s"]
    if len(latency_lines) + len(throughput_lines) != figures:
        problems.append(f"the CSV holds {len(latency_lines) + len(throughput_lines)} figures, the JSON {figures}")
    root = ElementTree.parse(svg_path).getroot()
    if not root.tag.endswith("svg"):
        problems.append(f"the SVG's root element is {root.tag}")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


sys.exit(main())
