import pytest

from waifugen_assets.subscribers.opt_out import is_opt_out, normalize


@pytest.mark.parametrize(
    "text",
    [
        "STOP", "stop", "Stop.", " stop!!! ", "STOP 🛑", "\uff33\uff34\uff2f\uff30",
        "stop stop STOP",
        "Unsubscribe", "UNSUBSCRIBE please", "please stop", "Stop messaging me",
        "stop messaging me!", "Don't message me", "opt-out", "opt out", "/stop",
        "/stop@AikoBot", "/unsubscribe", "leave me alone.", "No more messages, thanks",
        # es, fr, de, it, pt
        "Para", "¡Basta!", "darme de baja", "No quiero más mensajes", "Cancelar suscripción",
        "Arrêt", "ARRÊTEZ", "Me désabonner s'il vous plaît", "Arrête de m'écrire",
        "Stopp", "Abmelden bitte", "Hör auf!", "Keine Nachrichten mehr",
        "Basta", "Disiscrivimi", "Non scrivermi più",
        "Pare", "Descadastrar", "Não quero mais mensagens",
        # ja, ko, zh, ru
        "停止", "配信停止。", "やめてください", "ストップ\uff01", "수신거부",
        "그만 보내세요", "구독 취소", "退订", "Стоп", "отписаться",
    ],
)
def test_opt_out_messages(text: str) -> None:
    assert is_opt_out(text), text


@pytest.mark.parametrize(
    "text",
    [
        "", None, "don't stop", "Don't stop!", "stop by tomorrow?", "I can't stop thinking of you",
        "please", "thanks", "when do you stop posting?", "stopping by later", "bus stop",
        "unsubscribe? never!", "the end of the video was cute", "/start", "/start c-aiko",
        "/stopwatch", "hello", "paradise", "やめてないよ", "停止しないで", "그만두지 마",
        "stop it, you're making me blush", "para ti", "pare ce", "😘",
    ],
)
def test_not_opt_out_messages(text: str | None) -> None:
    assert not is_opt_out(text), text


def test_normalize_folds_case_accents_width_and_punctuation() -> None:
    assert normalize("  ARRÊT!!  Svp… ") == "arret svp"
    assert normalize("\uff33\uff34\uff2f\uff30。") == "stop"
    # Kana voicing marks are not Latin accents: they survive.
    assert normalize("ダメ") == "ダメ"
    assert normalize("그만!") == "그만"
