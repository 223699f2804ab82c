"""The page rill replaces, for bench-web's comparison in the same run.

A Flask app in the style of the tutorial stack rill replaces (Raspberry Pi -> RabbitMQ ->
Python consumer -> PostgreSQL -> Flask table): the newest 50 readings as a bare HTML table,
served by Flask's own threaded server as those tutorials run it. Kinder than most tutorials,
each server thread keeps its psycopg2 connection (a connection per request costs ~20 ms and
would make the comparison meaningless). Usage: flask_reference.py CONNINFO PORT
"""
import sys
import threading

import psycopg2
from flask import Flask, render_template_string

PAGE = """<!doctype html><title>Weather</title><h1>Registered weather data</h1>
<table border=1><tr><th>Sensor</th><th>Time</th><th>Temperature</th><th>Humidity</th></tr>
{% for r in rows %}<tr><td>{{ r[0] }}</td><td>{{ r[1] }}</td><td>{{ r[2] }}</td>
<td>{{ r[3] }}</td></tr>{% endfor %}</table>"""

app = Flask(__name__)
conninfo = sys.argv[1]
local = threading.local()


@app.route("/")
def index():
    if getattr(local, "conn", None) is None:
        local.conn = psycopg2.connect(conninfo)
        local.conn.autocommit = True
    with local.conn.cursor() as cur:
        cur.execute("SELECT sensor, ts, temperature, humidity FROM readings "
                    "ORDER BY ts DESC LIMIT 50")
        rows = cur.fetchall()
    return render_template_string(PAGE, rows=rows)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True)
