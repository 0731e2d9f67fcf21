"""The watchdog a rented instance runs from its onstart script: it destroys its own instance through the
provider's API when its supervisor stops heart-beating or a hard time cap passes (transport only: the
heartbeat is a file the supervisor touches over SSH)."""
from __future__ import annotations

import shlex

GRACE_S = 900.0          # no heartbeat for this long: the instance destroys itself
HARD_MAX_S = 24 * 3600.0  # never longer than this, whatever the caps say


def watchdog_onstart(api_url: str, heartbeat_file: str, grace_s: float, max_s: float, check_s: float = 30.0) -> str:
    """The onstart script: a background loop that destroys this instance through the API (with the
    container's own CONTAINER_API_KEY) when the heartbeat file is older than grace_s or max_s has passed."""
    url = api_url.rstrip("/") + "/api/v0/instances/"
    hb = shlex.quote(heartbeat_file)
    py_delete = ("import os,sys,urllib.request as u; u.urlopen(u.Request(sys.argv[1], data=b'{}', method='DELETE', "
                 "headers={'Authorization': 'Bearer ' + os.environ['CONTAINER_API_KEY'], "
                 "'Content-Type': 'application/json'}), timeout=30)")
    loop = (
        f"start=$(date +%s); "
        f"while sleep {float(check_s):g}; do "
        f"now=$(date +%s); hb=$(stat -c %Y {hb} 2>/dev/null || echo $start); "
        f"if [ $((now - hb)) -gt {int(grace_s)} ] || [ $((now - start)) -gt {int(max_s)} ]; then "
        f"u={shlex.quote(url)}\"$CONTAINER_ID/\"; "
        f"if command -v curl >/dev/null 2>&1; then "
        f"curl -s -m 30 -X DELETE -H \"Authorization: Bearer $CONTAINER_API_KEY\" "
        f"-H 'Content-Type: application/json' -d '{{}}' \"$u\"; "
        f"else python3 -c {shlex.quote(py_delete)} \"$u\"; fi; "
        f"sleep 30; fi; done")
    return (f"touch ~/.no_auto_tmux 2>/dev/null; mkdir -p \"$(dirname {hb})\" && touch {hb}; "
            f"nohup sh -c {shlex.quote(loop)} > /dev/null 2>&1 &")
