from handlers.mentions import mentioned_user_ids

BOT = "c0ffee00-1234-4abc-9def-0123456789ab"


def test_mention_markup_is_found():
    html = (
        f'<p><mention-component entity_identifier="{BOT}" entity_name="user_mention">'
        "</mention-component> can you triage this?</p>"
    )

    assert mentioned_user_ids(html) == {BOT}


def test_attribute_order_does_not_matter():
    html = (
        f'<mention-component entity_name="user_mention" entity_identifier="{BOT}">'
        "</mention-component>"
    )

    assert mentioned_user_ids(html) == {BOT}


def test_plain_text_id_is_not_a_mention():
    assert mentioned_user_ids(f"<p>{BOT}</p>") == set()


def test_other_entity_kinds_are_ignored():
    html = (
        f'<mention-component entity_name="issue_mention" entity_identifier="{BOT}">'
        "</mention-component>"
    )

    assert mentioned_user_ids(html) == set()


def test_empty_comment_has_no_mentions():
    assert mentioned_user_ids("") == set()
    assert mentioned_user_ids(None) == set()
