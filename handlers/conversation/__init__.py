"""The conversation, written once for every platform.

Shaped like aiogram's routers and PTB's handlers: :mod:`.routes` holds every
table (events, commands, buttons -> handler and the states it may act in,
with the state diagram of a request); the feature modules hold small
``async def handler(ctx, who, ...)`` functions:

* :mod:`.intake` — a voice note, typed ``/anime`` text, the corrected words after Edit, a photo;
* :mod:`.card` — the confirmation card's buttons (Draw, Edit, Heard wrong language, Style, Details, Keep what I said);
* :mod:`.followups` — Restyle, Reroll, Original, /history and sending a picture again;
* :mod:`.settings` — /settings, /style and their buttons;
* :mod:`.recovery` — Retry after a missing model, Try again, Cancel and resuming after a restart;
* :mod:`.welcome` — /start, /help.

They share :mod:`.context` (what a handler needs), :mod:`.lifecycle`
(creating, queuing and failing requests), :mod:`.readings` (which words a
request means), :mod:`.card_view` (the card on screen), :mod:`.queueing`
(from a card to a job), :mod:`.transcription` (from a voice note to a
card) and :mod:`.voice` (the spoken replies after a card or a picture). :class:`Conversation` (:mod:`.dispatcher`) is the entry: it hands
each event to its route.
"""

from handlers.conversation.config import ConversationConfig
from handlers.conversation.dispatcher import Conversation

__all__ = ["Conversation", "ConversationConfig"]
