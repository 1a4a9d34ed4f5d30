"""wrk with pre-signed requests: every request carries its own nonce and signature."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Each line of the requests file: METHOD \t PATH \t header:value|header:value \t BODY
LUA = r"""
local requests = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local file, threads = args[1], tonumber(args[2])
  once = args[3] == "once"
  local n = 0
  for line in io.lines(file) do
    if n % threads == id then
      local method, path, headers, body = line:match("^(%S+)\t(%S+)\t([^\t]*)\t(.*)$")
      local h = {}
      for pair in headers:gmatch("[^|]+") do
        local k, v = pair:match("^([^:]+):(.*)$")
        h[k] = v
      end
      if body == "" then body = nil end
      requests[#requests + 1] = wrk.format(method, path, h, body)
    end
    n = n + 1
  end
  position = 0
end

function request()
  position = position + 1
  if position > #requests then
    -- A warm-up sends each request once; a measured run starts over if it runs out.
    if once then wrk.thread:stop() end
    position = 1
  end
  return requests[position]
end
"""


@dataclass(frozen=True)
class Result:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    total: int
    non_2xx: int
    errors: int


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    url: str,
    requests_file: Path,
    *,
    seconds: int,
    connections: int,
    threads: int = 2,
    once: bool = False,
) -> Result:
    """``seconds`` of load; with ``once``, each request is sent at most once (wrk
    still waits out ``seconds``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    output = subprocess.run(  # noqa: S603 - fixed arguments
        [
            shutil.which("wrk") or "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            script.name,
            url,
            "--",
            str(requests_file),
            str(threads),
            *(["once"] if once else []),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script.name).unlink()
    return parse(output)


def _duration_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    factor = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
    return float(value) * factor


def parse(output: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    # Anchored to the start of the line: the thread-stats lines end in percentages
    # too ("+/- Stdev 68.50%"), which an unanchored "50%" would match.
    p50 = _duration_ms(re.search(r"^\s*50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _duration_ms(re.search(r"^\s*99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx_match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors_match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = sum(int(g) for g in errors_match.groups()) if errors_match else 0
    return Result(rps, p50, p99, total, int(non_2xx_match.group(1)) if non_2xx_match else 0, errors)
