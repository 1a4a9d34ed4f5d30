"""The Telegram bot (SPEC §10): the webhook, account linking, commands and notifications."""
