"""The Python peer of the floor: the article's two HTTP functions, without authentication.

`front` takes {"foo": ...}, renames it to "bar" and forwards it to BACK_URL with one pooled
`requests` session; `back` parses the JSON and answers 201. Served like Cloud Functions gen2
serves Python (gunicorn, 1 worker x 8 threads) by bench-harness when BENCH_SCENARIOS includes
`python`. GET answers 200 (readiness).
"""

import os

import functions_framework
import requests

BACK_URL = os.environ.get("BACK_URL", "http://127.0.0.1:9092/")
SESSION = requests.Session()


@functions_framework.http
def front(request):
    if request.method == "GET":
        return "ok", 200
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("foo"), str):
        return {"detail": 'missing "foo"'}, 400
    body["bar"] = body.pop("foo")
    res = SESSION.post(BACK_URL, json=body, timeout=10)
    return res.content, res.status_code, {"Content-Type": "application/json"}


@functions_framework.http
def back(request):
    if request.method == "GET":
        return "ok", 200
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return {"detail": "expected a JSON object"}, 400
    return {"id": 1, "body": body}, 201
