"""Speech: audio intake, faster-whisper recognition, homophone correction, the bot's transcriber."""
