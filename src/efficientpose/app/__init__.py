"""``efficientpose serve``: a local web app that runs predict and analysis on uploaded videos and photos.

Server-rendered pages (Starlette, Jinja2, a little plain JavaScript), one worker process for the jobs, sessions
kept in SQLite plus files under the data folder. Install with ``pip install "efficientpose[app]"``.
"""
