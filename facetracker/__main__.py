from facetracker.cli import app

app()
