from tradecast.cli import app

app(prog_name="tradecast")
