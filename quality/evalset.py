"""A labelled, synthetic set of grounded and fabricated answers over given contexts, for the groundedness scorer.

Built from fact templates in 16 domains; dev and test splits hold *different* domains, so a
threshold calibrated on dev is judged on facts and wording it never saw. Deterministic per seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# label 0 = grounded (no hallucination), 1 = hallucinated
CATEGORIES: Mapping[str, int] = {
    "copy": 0,
    "paraphrase": 0,
    "partial": 0,
    "multi_fact": 0,
    "correct_refusal": 0,
    "tool_answer": 0,
    "wrong_number": 1,
    "swapped_entity": 1,
    "entity_binding": 1,
    "negation": 1,
    "unsupported_addition": 1,
    "fabricated": 1,
}

REFUSALS: tuple[str, ...] = (
    "I'm sorry, but the provided documents do not mention that.",
    "I could not find this information in the documents I have.",
    "The context does not say anything about {topic}.",
    "Unfortunately I don't have information about {topic}.",
    "That is not specified in the provided sources, so I cannot answer it.",
    "I am unable to answer this from the available information.",
    "There is no information about {topic} in the documents. Please contact support.",
    "Sorry, I can't find {topic} in the retrieved records.",
)


@dataclass(frozen=True)
class Kind:
    """A fact template: how the fact is written in a document, asked about, answered faithfully and falsely."""

    name: str
    domain: str
    subjects: tuple[str, ...]
    slots: Mapping[str, tuple[Any, ...]]
    number_slot: str
    context: tuple[str, ...]
    question: tuple[str, ...]
    copy: tuple[str, ...]
    paraphrase: tuple[str, ...]
    partial: tuple[str, ...]
    negation: tuple[str, ...]
    addition: tuple[str, ...]
    absent_question: tuple[str, ...]
    fabricated: tuple[str, ...]
    absent_topic: str
    tool: Callable[[list[dict[str, Any]]], Any] | None = None


KINDS: tuple[Kind, ...] = (
    Kind(
        name="branch_hours",
        domain="banking",
        subjects=("Berlin", "Paris", "Milan", "Warsaw", "Madrid", "Utrecht", "Lyon", "Vienna"),
        slots={"open": (7, 8, 9, 10), "close": (16, 17, 18, 19)},
        number_slot="open",
        context=(
            "The {s} branch opens at {open}:00 and closes at {close}:00 from Monday to Friday.",
            "Opening hours of our {s} branch: Monday to Friday, {open}:00 to {close}:00.",
        ),
        question=("When does the {s} branch open?", "What are the opening hours of the branch in {s}?"),
        copy=("The {s} branch opens at {open}:00 and closes at {close}:00 from Monday to Friday.",),
        paraphrase=(
            "From Monday to Friday you can visit the branch in {s} between {open}:00 and {close}:00.",
            "In {s}, the branch is open {open}:00\u2013{close}:00, Monday through Friday.",
            "Our {s} office welcomes customers on weekdays from {open} am until {close}:00.",
            "Doors open at {open}:00 in {s} and the branch shuts at {close}:00 on workdays.",
        ),
        partial=("The {s} branch opens at {open}:00.", "It closes at {close}:00 in {s}."),
        negation=("The {s} branch is not open from Monday to Friday.", "The branch in {s} does not open at {open}:00."),
        addition=(
            "On Saturdays it is also open until 13:00.",
            "Free parking is available behind the building.",
            "The manager, Mr. Hoffmann, can be reached there in person.",
        ),
        absent_question=("Is the {s} branch open on Sundays?", "Does the {s} branch have a safe deposit service?"),
        fabricated=(
            "Yes, the {s} branch is open on Sundays from 10:00 to 14:00.",
            "The {s} branch offers safe deposit boxes starting at 60 EUR per year.",
        ),
        absent_topic="weekend opening",
    ),
    Kind(
        name="account_fees",
        domain="banking",
        subjects=("Classic", "Gold", "Platinum", "Student", "Business", "Junior"),
        slots={"fee": (0, 3, 5, 8, 12), "withdrawals": (4, 5, 10, 20)},
        number_slot="withdrawals",
        context=(
            "The {s} account costs {fee} EUR per month and includes {withdrawals} free cash withdrawals.",
            "{s} account: monthly fee {fee} EUR; {withdrawals} cash withdrawals per month are free of charge.",
        ),
        question=("How much does the {s} account cost?", "What does the {s} account include?"),
        copy=("The {s} account costs {fee} EUR per month and includes {withdrawals} free cash withdrawals.",),
        paraphrase=(
            "With the {s} account you pay {fee} euros a month, and {withdrawals} withdrawals are free.",
            "The monthly price of a {s} account is {fee} EUR, with {withdrawals} cash withdrawals at no charge.",
            "For {fee} EUR monthly, {s} account holders get {withdrawals} free withdrawals.",
            "A {s} account comes with {withdrawals} free cash withdrawals each month; the fee is {fee} EUR.",
        ),
        partial=(
            "The {s} account costs {fee} EUR per month.",
            "You get {withdrawals} free withdrawals with the {s} account.",
        ),
        negation=(
            "The {s} account does not include free cash withdrawals.",
            "Cash withdrawals are never free with the {s} account.",
        ),
        addition=(
            "It also includes travel insurance for the whole family.",
            "Overdrafts up to 2,000 EUR are interest-free for the first year.",
            "New customers receive a welcome bonus of 50 EUR.",
        ),
        absent_question=(
            "Does the {s} account include a credit card?",
            "What is the overdraft interest on the {s} account?",
        ),
        fabricated=(
            "Yes, the {s} account includes a free Visa credit card.",
            "The overdraft interest on the {s} account is 9.5% per year.",
        ),
        absent_topic="credit cards",
    ),
    Kind(
        name="medication",
        domain="health",
        subjects=("Amoxicillin", "Ibuprofen", "Metformin", "Paracetamol", "Doxycycline", "Naproxen"),
        slots={"mg": (200, 250, 400, 500, 850), "times": (2, 3), "days": (5, 7, 10, 14)},
        number_slot="mg",
        context=(
            "Take {mg} mg of {s} {times} times a day for {days} days, after meals.",
            "{s} {mg} mg: one tablet {times} times daily for {days} days, taken with food.",
        ),
        question=("How should I take {s}?", "What is the dose of {s}?"),
        copy=("Take {mg} mg of {s} {times} times a day for {days} days, after meals.",),
        paraphrase=(
            "You should take one {mg} mg tablet of {s} {times} times daily, with food, for {days} days.",
            "The {s} dose is {mg} mg, {times} times per day, over {days} days after eating.",
            "For {days} days, take {s} ({mg} mg) {times} times a day following a meal.",
            "Swallow {mg} mg of {s} after breakfast, lunch or dinner, {times} times each day, for {days} days.",
        ),
        partial=("The dose of {s} is {mg} mg.", "You take {s} for {days} days."),
        negation=("{s} should not be taken with food.", "Do not take {s} {times} times a day."),
        addition=(
            "It is safe to drink alcohol while taking it.",
            "Side effects are extremely rare and never serious.",
            "You can double the dose if the pain is strong.",
        ),
        absent_question=("Can I drink alcohol while taking {s}?", "Is {s} safe during pregnancy?"),
        fabricated=("Yes, moderate alcohol is fine with {s}.", "{s} is completely safe during pregnancy."),
        absent_topic="alcohol",
    ),
    Kind(
        name="follow_up",
        domain="health",
        subjects=("Dr. Rossi", "Dr. Schmidt", "Dr. Dubois", "Dr. Kowalski", "Dr. García", "Dr. de Vries"),
        slots={"days": (7, 10, 14, 21), "ward": ("A3", "B2", "C4", "D1")},
        number_slot="days",
        context=(
            "The follow-up check with {s} is {days} days after discharge in ward {ward}.",
            "Patients see {s} for a follow-up {days} days after leaving hospital (ward {ward}).",
        ),
        question=("When is the follow-up with {s}?", "Where and when do I see {s} again?"),
        copy=("The follow-up check with {s} is {days} days after discharge in ward {ward}.",),
        paraphrase=(
            "You will see {s} again {days} days after you are discharged, in ward {ward}.",
            "Your check-up with {s} takes place in ward {ward}, {days} days after discharge.",
            "{days} days after going home, you return to ward {ward} to meet {s}.",
            "Please come back to ward {ward} {days} days post-discharge for the appointment with {s}.",
        ),
        partial=("The follow-up with {s} is in ward {ward}.", "You see {s} {days} days after discharge."),
        negation=("There is no follow-up with {s} after discharge.", "The check with {s} is not in ward {ward}."),
        addition=(
            "Bring your insurance card and the discharge letter.",
            "Parking at the hospital is free for patients.",
            "The visit usually lasts about 45 minutes.",
        ),
        absent_question=("Do I need to fast before seeing {s}?", "Can I bring a relative to the appointment with {s}?"),
        fabricated=(
            "Yes, you must fast for 12 hours before seeing {s}.",
            "Relatives are welcome; {s} prefers that one family member attends.",
        ),
        absent_topic="fasting",
    ),
    Kind(
        name="returns",
        domain="retail",
        subjects=("Nordlicht", "Alpenmarkt", "Brightwave", "Casa Verde", "Polaris Sports", "Maison Bleue"),
        slots={"days": (14, 30, 60, 100), "refund": (3, 5, 7, 10)},
        number_slot="days",
        context=(
            "Items bought at {s} can be returned within {days} days with the receipt; "
            "refunds take {refund} business days.",
            "{s} return policy: {days} days with proof of purchase. The refund arrives within {refund} business days.",
        ),
        question=("What is the return policy of {s}?", "How long do I have to return something to {s}?"),
        copy=(
            "Items bought at {s} can be returned within {days} days with the receipt; "
            "refunds take {refund} business days.",
        ),
        paraphrase=(
            "You have {days} days to bring a purchase back to {s}, as long as you keep the receipt.",
            "{s} accepts returns for {days} days after purchase with proof; "
            "expect your money in {refund} business days.",
            "Returns at {s} are possible up to {days} days later, and the refund takes {refund} working days.",
            "If you return an item to {s} within {days} days, you will be reimbursed within {refund} business days.",
        ),
        partial=("You can return items to {s} within {days} days.", "A refund from {s} takes {refund} business days."),
        negation=("{s} does not accept returns.", "You do not need a receipt to return items to {s}."),
        addition=(
            "Sale items can also be exchanged at any time.",
            "Shipping costs for returns are always refunded.",
            "Gift cards are refunded in cash on request.",
        ),
        absent_question=("Does {s} refund shipping costs?", "Can I return sale items to {s}?"),
        fabricated=(
            "Yes, {s} refunds shipping costs of up to 6.90 EUR.",
            "Sale items can be returned to {s} within 7 days.",
        ),
        absent_topic="shipping costs",
    ),
    Kind(
        name="product_spec",
        domain="retail",
        subjects=("Nimbus X2", "Aero 5", "Terra S", "Orbit Pro", "Helix 3", "Quanta M"),
        slots={"hours": (10, 12, 18, 24, 30), "grams": (180, 250, 1350, 1900)},
        number_slot="hours",
        context=(
            "The {s} weighs {grams} g and its battery lasts up to {hours} hours.",
            "{s} specifications: weight {grams} grams, battery life up to {hours} hours.",
        ),
        question=("How long does the battery of the {s} last?", "How heavy is the {s}?"),
        copy=("The {s} weighs {grams} g and its battery lasts up to {hours} hours.",),
        paraphrase=(
            "On a full charge the {s} runs for as long as {hours} hours, and it weighs {grams} grams.",
            "Battery life of the {s} is up to {hours} hours; the device is {grams} g.",
            "You get up to {hours} hours of use from the {s}, which weighs {grams} grams.",
            "At {grams} grams, the {s} offers a battery that lasts up to {hours} hours.",
        ),
        partial=("The {s} weighs {grams} g.", "The battery of the {s} lasts up to {hours} hours."),
        negation=("The {s} battery does not last {hours} hours.", "The {s} is not {grams} g."),
        addition=(
            "It is waterproof to a depth of 50 metres.",
            "It ships with a free leather case.",
            "The screen is made of sapphire glass.",
        ),
        absent_question=("Is the {s} waterproof?", "What colours does the {s} come in?"),
        fabricated=("Yes, the {s} is waterproof to 30 metres.", "The {s} comes in black, silver and ocean blue."),
        absent_topic="water resistance",
    ),
    Kind(
        name="flights",
        domain="travel",
        subjects=("LH1234", "AF2210", "KL1605", "AZ0417", "LO0381", "IB3170"),
        slots={"time": ("06:40", "09:15", "13:05", "17:50", "20:25"), "gate": ("A12", "B7", "C33", "D4", "E18")},
        number_slot="time",
        context=("Flight {s} departs at {time} from gate {gate}.", "{s}: scheduled departure {time}, gate {gate}."),
        question=("When does flight {s} leave?", "Which gate is flight {s} at?"),
        copy=("Flight {s} departs at {time} from gate {gate}.",),
        paraphrase=(
            "Your flight {s} leaves from gate {gate} at {time}.",
            "Boarding for {s} is at gate {gate}; the departure is scheduled for {time}.",
            "{s} is due to take off at {time}, from gate {gate}.",
            "Head to gate {gate}: flight {s} departs at {time}.",
        ),
        partial=("Flight {s} departs at {time}.", "Flight {s} leaves from gate {gate}."),
        negation=("Flight {s} does not depart from gate {gate}.", "Flight {s} is not leaving at {time}."),
        addition=(
            "The flight is delayed by 40 minutes because of fog.",
            "Passengers get a free meal on board.",
            "The crew asks everyone to be at the gate an hour early.",
        ),
        absent_question=("Is flight {s} delayed?", "Is there wifi on flight {s}?"),
        fabricated=(
            "Yes, flight {s} is delayed by about 25 minutes.",
            "Flight {s} offers free wifi for all passengers.",
        ),
        absent_topic="delays",
    ),
    Kind(
        name="leave_policy",
        domain="hr",
        subjects=("Germany", "France", "Italy", "Poland", "Spain", "the Netherlands"),
        slots={"vacation": (25, 26, 28, 30), "weeks": (14, 16, 20, 26)},
        number_slot="vacation",
        context=(
            "Employees in {s} receive {vacation} days of paid vacation per year and {weeks} weeks of parental leave.",
            "{s}: {vacation} paid vacation days a year; parental leave of {weeks} weeks.",
        ),
        question=("How many vacation days do employees in {s} get?", "What is the leave policy in {s}?"),
        copy=(
            "Employees in {s} receive {vacation} days of paid vacation per year and {weeks} weeks of parental leave.",
        ),
        paraphrase=(
            "Staff based in {s} are entitled to {vacation} paid days off a year, plus {weeks} weeks of parental leave.",
            "In {s} you get {vacation} days of paid holiday annually and {weeks} weeks of parental leave.",
            "The annual vacation allowance in {s} is {vacation} days; parental leave lasts {weeks} weeks.",
            "People working in {s} have {weeks} weeks of parental leave and {vacation} vacation days every year.",
        ),
        partial=("Employees in {s} get {vacation} vacation days per year.", "Parental leave in {s} is {weeks} weeks."),
        negation=("Employees in {s} do not receive paid vacation.", "There is no parental leave in {s}."),
        addition=(
            "Unused days can be paid out in cash at the end of the year.",
            "Managers receive five extra days.",
            "Sabbaticals of up to a year are available after 3 years.",
        ),
        absent_question=("Can unused vacation days in {s} be carried over?", "Is there a sabbatical programme in {s}?"),
        fabricated=(
            "Yes, up to 10 unused days in {s} carry over to March.",
            "Employees in {s} can take a 6-month sabbatical after 5 years.",
        ),
        absent_topic="carry-over",
    ),
    Kind(
        name="password_policy",
        domain="it",
        subjects=("Atlas portal", "Helix VPN", "Orion mail", "Vega intranet", "Lynx CRM", "Tern wiki"),
        slots={"length": (10, 12, 14, 16), "rotate": (60, 90, 180, 365)},
        number_slot="length",
        context=(
            "Passwords for the {s} need at least {length} characters and must be changed every {rotate} days.",
            "{s} password rules: minimum {length} characters, change every {rotate} days.",
        ),
        question=("What are the password rules for the {s}?", "How long must a password for the {s} be?"),
        copy=("Passwords for the {s} need at least {length} characters and must be changed every {rotate} days.",),
        paraphrase=(
            "A {s} password must have a minimum of {length} characters and be changed every {rotate} days.",
            "For the {s}, use at least {length} characters and change your password after {rotate} days.",
            "Every {rotate} days you have to set a new {s} password with {length} or more characters.",
            "The {s} requires passwords of {length}+ characters, renewed every {rotate} days.",
        ),
        partial=(
            "{s} passwords need at least {length} characters.",
            "You change the {s} password every {rotate} days.",
        ),
        negation=("{s} passwords never have to be changed.", "Passwords for the {s} do not need {length} characters."),
        addition=(
            "Two-factor authentication is optional.",
            "Passwords may be shared with your team lead.",
            "The help desk can tell you your current password.",
        ),
        absent_question=("Does the {s} support two-factor authentication?", "Can I reuse an old password for the {s}?"),
        fabricated=(
            "Yes, the {s} supports two-factor login with an authenticator app.",
            "You can reuse a password for the {s} after 3 changes.",
        ),
        absent_topic="two-factor authentication",
    ),
    Kind(
        name="company_profile",
        domain="business",
        subjects=("Veltrix", "Corvana", "Lumora", "Baltic Freight", "Solenne", "Kestrel Labs"),
        slots={
            "year": (1987, 1994, 2003, 2011, 2015),
            "staff": (120, 450, 2300, 9000),
            "city": ("Hamburg", "Lisbon", "Gdansk", "Turin", "Ghent"),
        },
        number_slot="year",
        context=(
            "{s} was founded in {year} in {city} and employs about {staff} people.",
            "Company profile: {s}, founded {year}, headquarters in {city}, roughly {staff} employees.",
        ),
        question=("When was {s} founded?", "Where is {s} based and how big is it?"),
        copy=("{s} was founded in {year} in {city} and employs about {staff} people.",),
        paraphrase=(
            "Founded in {city} in {year}, {s} now has around {staff} employees.",
            "{s} has its headquarters in {city}; it started in {year} and has roughly {staff} staff.",
            "Since {year}, {s} has grown to about {staff} people, with its base in {city}.",
            "The company {s} dates back to {year} and is based in {city}, employing approximately {staff} people.",
        ),
        partial=("{s} was founded in {year}.", "{s} is based in {city}."),
        negation=("{s} was not founded in {city}.", "{s} does not employ {staff} people."),
        addition=(
            "It went public on the Frankfurt stock exchange in 2019.",
            "Its chief executive is Clara Jensen.",
            "Revenue last year was 340 million EUR.",
        ),
        absent_question=("Who is the CEO of {s}?", "Is {s} listed on a stock exchange?"),
        fabricated=("The CEO of {s} is Martin Keller.", "Yes, {s} has been listed in Paris since 2017."),
        absent_topic="the management",
    ),
    Kind(
        name="waste_collection",
        domain="city",
        subjects=("Mitte", "Altstadt", "Nordend", "Südstadt", "Westpark", "Hafenviertel"),
        slots={"day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"), "hour": (6, 7, 8)},
        number_slot="hour",
        context=(
            "In {s}, household waste is collected every {day} from {hour}:00.",
            "{s} district: waste collection on {day}, starting at {hour}:00.",
        ),
        question=("When is waste collected in {s}?", "Which day is bin day in {s}?"),
        copy=("In {s}, household waste is collected every {day} from {hour}:00.",),
        paraphrase=(
            "Bins in {s} are emptied each {day}, beginning at {hour}:00.",
            "The {s} collection happens on {day} mornings from {hour} am.",
            "Put your bin out before {hour}:00 on {day} if you live in {s}.",
            "Household rubbish in {s} is picked up every {day} starting at {hour}:00.",
        ),
        partial=("Waste in {s} is collected on {day}.", "Collection in {s} starts at {hour}:00."),
        negation=("Waste in {s} is not collected on {day}.", "There is no household waste collection in {s}."),
        addition=(
            "Glass is collected on the same day.",
            "Bulky waste is picked up for free once a month.",
            "Late bins are fined 50 EUR.",
        ),
        absent_question=("When is glass collected in {s}?", "Is bulky waste picked up in {s}?"),
        fabricated=(
            "Glass in {s} is collected every second Thursday.",
            "Yes, bulky waste in {s} is collected monthly for free.",
        ),
        absent_topic="glass collection",
    ),
    Kind(
        name="shipping",
        domain="retail",
        subjects=("Austria", "Belgium", "Denmark", "Portugal", "Ireland", "Greece"),
        slots={"days": (2, 3, 4, 6), "cost": ("4.90", "6.50", "9.90", "12.00")},
        number_slot="days",
        context=(
            "Standard delivery to {s} takes {days} working days and costs {cost} EUR.",
            "Shipping to {s}: {days} working days, {cost} EUR.",
        ),
        question=("How long does delivery to {s} take?", "What does shipping to {s} cost?"),
        copy=("Standard delivery to {s} takes {days} working days and costs {cost} EUR.",),
        paraphrase=(
            "Orders to {s} arrive in {days} business days, for a shipping cost of {cost} EUR.",
            "For {cost} EUR we deliver to {s} within {days} working days.",
            "Expect {days} working days for standard shipping to {s}; the price is {cost} euros.",
            "Sending an order to {s} costs {cost} EUR and it gets there in {days} working days.",
        ),
        partial=("Delivery to {s} takes {days} working days.", "Shipping to {s} costs {cost} EUR."),
        negation=("We do not deliver to {s}.", "Shipping to {s} is not {cost} EUR."),
        addition=(
            "Orders over 50 EUR ship for free.",
            "Express delivery arrives the next day.",
            "All parcels are sent with DHL.",
        ),
        absent_question=("Is there express shipping to {s}?", "Is shipping to {s} free above some amount?"),
        fabricated=(
            "Yes, express delivery to {s} takes 1 day and costs 19 EUR.",
            "Shipping to {s} is free above 40 EUR.",
        ),
        absent_topic="express shipping",
    ),
    # Tool kinds: the evidence is a tool result (JSON), not a document.
    Kind(
        name="account_balance",
        domain="tools",
        subjects=("4821", "1337", "9044", "7710", "2568", "3195"),
        slots={
            "balance": ("1,234.56", "87.20", "15,420.00", "642.75", "3,008.10"),
            "merchant": ("Rewe", "Carrefour", "Lidl", "Esselunga", "Albert Heijn"),
        },
        number_slot="balance",
        context=(),
        question=("What is the balance of my account ending {s}?", "How much is on account {s}?"),
        copy=("The balance of the account ending {s} is {balance} EUR.",),
        paraphrase=(
            "Your account ending in {s} currently holds {balance} euros.",
            "Right now there is {balance} EUR on account {s}; the last payment was at {merchant}.",
            "Account {s} has a balance of {balance} EUR.",
            "You have {balance} EUR available on the account ending {s}.",
        ),
        partial=("Your last payment from account {s} was at {merchant}.",),
        negation=("Account {s} does not have {balance} EUR.", "There is no money on account {s}."),
        addition=(
            "Your overdraft limit is 2,500 EUR.",
            "A standing order of 900 EUR runs tomorrow.",
            "Interest of 1.5% is paid on this balance.",
        ),
        absent_question=("What is the overdraft limit on account {s}?", "Are there pending payments on account {s}?"),
        fabricated=(
            "The overdraft limit on account {s} is 1,500 EUR.",
            "There is one pending payment of 120 EUR on account {s}.",
        ),
        absent_topic="the overdraft",
        tool=lambda recs: {
            "accounts": [
                {
                    "account_suffix": r["s"],
                    "balance": float(str(r["balance"]).replace(",", "")),
                    "currency": "EUR",
                    "last_transaction": {"merchant": r["merchant"]},
                }
                for r in recs
            ]
        },
    ),
    Kind(
        name="appointment",
        domain="tools",
        subjects=("Dr. Rossi", "Dr. Schmidt", "Dr. Dubois", "Dr. Kowalski", "Dr. Bernard", "Dr. Müller"),
        slots={
            "date": ("2026-11-14", "2026-12-02", "2027-01-19", "2026-11-28"),
            "time": ("08:30", "10:45", "14:15", "16:00"),
            "room": ("B12", "C3", "A7", "D21"),
        },
        number_slot="time",
        context=(),
        question=("When is my appointment with {s}?", "Where do I see {s}?"),
        copy=("Your appointment with {s} is on {date} at {time} in room {room}.",),
        paraphrase=(
            "You are booked with {s} on {date_long} at {time}, room {room}.",
            "{s} will see you at {time} on {date_long}; please go to room {room}.",
            "The appointment with {s} is scheduled for {date_long}, {time}, in room {room}.",
            "Please be in room {room} at {time} on {date_long} for {s}.",
        ),
        partial=("Your appointment with {s} is in room {room}.", "You see {s} at {time}."),
        negation=("You do not have an appointment with {s}.", "The appointment with {s} is not in room {room}."),
        addition=(
            "Please arrive 30 minutes early to fill in forms.",
            "The consultation costs 80 EUR, paid at the desk.",
            "Dr. Weber will assist during the visit.",
        ),
        absent_question=("Do I need a referral for {s}?", "How much does the visit with {s} cost?"),
        fabricated=("Yes, you need a referral from your family doctor for {s}.", "The visit with {s} costs 95 EUR."),
        absent_topic="referrals",
        tool=lambda recs: [
            {"doctor": r["s"], "date": r["date"], "time": r["time"], "room": r["room"], "status": "confirmed"}
            for r in recs
        ],
    ),
    Kind(
        name="order_status",
        domain="tools",
        subjects=("A-1042", "B-2290", "C-3175", "D-4408", "E-5561", "F-6613"),
        slots={"carrier": ("DHL", "UPS", "GLS", "DPD", "PostNL"), "eta": (1, 2, 3, 5)},
        number_slot="eta",
        context=(),
        question=("Where is my order {s}?", "When will order {s} arrive?"),
        copy=("Order {s} has been shipped with {carrier} and should arrive in {eta} days.",),
        paraphrase=(
            "{carrier} is delivering your order {s}; expect it within {eta} days.",
            "Your parcel {s} is on its way via {carrier} and is due in {eta} days.",
            "Good news: order {s} left our warehouse with {carrier}, arriving in about {eta} days.",
            "Order {s} was handed to {carrier}. Estimated delivery: {eta} days.",
        ),
        partial=("Order {s} has been shipped.", "Order {s} is with {carrier}."),
        negation=("Order {s} has not been shipped yet.", "Order {s} is not with {carrier}."),
        addition=(
            "You will get a 10% discount on your next order for the delay.",
            "The parcel needs a signature on delivery.",
            "It is insured up to 500 EUR.",
        ),
        absent_question=("Can I change the delivery address for order {s}?", "Is order {s} insured?"),
        fabricated=(
            "Yes, you can change the address for order {s} until 18:00 today.",
            "Order {s} is insured up to 300 EUR.",
        ),
        absent_topic="address changes",
        tool=lambda recs: {
            "orders": [
                {"order_id": r["s"], "status": "shipped", "carrier": r["carrier"], "eta_days": r["eta"]} for r in recs
            ]
        },
    ),
    Kind(
        name="weather",
        domain="tools",
        subjects=("Milan", "Porto", "Krakow", "Bruges", "Tallinn", "Seville"),
        slots={
            "temp": (3, 8, 14, 21, 27),
            "condition": ("rain", "sunshine", "snow", "fog", "wind"),
            "humidity": (40, 55, 70, 85),
        },
        number_slot="temp",
        context=(),
        question=("What is the weather in {s}?", "How warm is it in {s} today?"),
        copy=("In {s} it is {temp} °C with {condition} and {humidity}% humidity.",),
        paraphrase=(
            "Today {s} has {condition} and a temperature of {temp} degrees.",
            "Expect {condition} in {s}, around {temp} °C.",
            "It is currently {temp} degrees Celsius in {s}, humidity {humidity} percent.",
            "{s} weather now: {temp} °C, {condition}.",
        ),
        partial=("It is {temp} °C in {s}.", "There is {condition} in {s} today."),
        negation=("There is no {condition} in {s} today.", "It is not {temp} °C in {s}."),
        addition=(
            "A storm warning is in effect until midnight.",
            "Tomorrow will be 5 degrees warmer.",
            "The pollen count is very high.",
        ),
        absent_question=("Will it rain in {s} tomorrow?", "Is there a storm warning for {s}?"),
        fabricated=("Yes, tomorrow brings heavy rain to {s}.", "There is an amber storm warning for {s} tonight."),
        absent_topic="tomorrow's forecast",
        tool=lambda recs: [
            {"city": r["s"], "temperature_c": r["temp"], "condition": r["condition"], "humidity_percent": r["humidity"]}
            for r in recs
        ],
    ),
)

# Held-out domains: the threshold is calibrated on DEV_KINDS and reported on the rest.
DEV_KINDS: frozenset[str] = frozenset(
    {
        "branch_hours",
        "medication",
        "returns",
        "flights",
        "password_policy",
        "waste_collection",
        "account_balance",
        "order_status",
    }
)

_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class EvalItem:
    """One labelled item, laid out as the span columns a collector would decode."""

    id: str
    kind: str
    domain: str
    category: str
    label: int
    split: str
    question: str
    answer: str
    input_messages: str
    output_messages: str
    retrieval_documents: str = ""
    tool_call_result: str = ""
    system_instructions: str = ""
    placement: str = "retrieval"
    extra: dict[str, str] = field(default_factory=dict)

    def columns(self) -> dict[str, str]:
        """The content columns of a span carrying this item."""
        return {
            "input_messages": self.input_messages,
            "output_messages": self.output_messages,
            "retrieval_documents": self.retrieval_documents,
            "tool_call_result": self.tool_call_result,
            "system_instructions": self.system_instructions,
        }


def _fill(template: str, values: Mapping[str, Any]) -> str:
    return template.format(**values)


def _values(kind: Kind, subject: str, rng: random.Random, avoid: Mapping[str, Any] | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {"s": subject}
    for slot, choices in kind.slots.items():
        options = [c for c in choices if avoid is None or c != avoid.get(slot)]
        values[slot] = rng.choice(options)
    if "date" in values:
        y, m, d = (int(x) for x in str(values["date"]).split("-"))
        values["date_long"] = f"{d} {_MONTH_NAMES[m - 1]} {y}"
    return values


def _msgs(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


class _Builder:
    """Lays a question, its evidence and an answer out as span content columns."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def document(self, kind: Kind, question: str, docs: Sequence[str]) -> dict[str, str]:
        r = self.rng
        where = r.choices(("retrieval", "system", "user"), weights=(6, 3, 2))[0]
        system = json.dumps([{"type": "text", "content": "You are a helpful assistant. Answer from the context."}])
        if where == "retrieval":
            payload = [
                {"id": f"doc-{r.randrange(10_000)}", "score": round(r.uniform(0.5, 0.95), 3), "content": d}
                for d in docs
            ]
            return {
                "retrieval_documents": json.dumps(payload, ensure_ascii=False),
                "input_messages": json.dumps([_msgs("user", question)], ensure_ascii=False),
                "system_instructions": system,
                "placement": where,
            }
        if where == "system":
            ctx = "Context:\n" + "\n".join(f"- {d}" for d in docs)
            return {
                "input_messages": json.dumps([_msgs("system", ctx), _msgs("user", question)], ensure_ascii=False),
                "system_instructions": system,
                "placement": where,
            }
        text = "Read this:\n" + " ".join(docs) + f"\n\nQuestion: {question}"
        return {
            "input_messages": json.dumps([_msgs("user", text)], ensure_ascii=False),
            "system_instructions": system,
            "placement": where,
        }

    def tool(self, kind: Kind, question: str, result: Any) -> dict[str, str]:
        r = self.rng
        result_json = json.dumps(result, ensure_ascii=False)
        if r.random() < 0.5:
            return {
                "tool_call_result": result_json,
                "input_messages": json.dumps([_msgs("user", question)], ensure_ascii=False),
                "placement": "tool_column",
            }
        call_id = f"call_{r.getrandbits(32):08x}"
        msgs = [
            _msgs("user", question),
            {"role": "assistant", "parts": [{"type": "tool_call", "id": call_id, "name": kind.name, "arguments": {}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": call_id, "response": result}]},
        ]
        return {"input_messages": json.dumps(msgs, ensure_ascii=False), "placement": "tool_message"}


def _scenarios(
    kind: Kind, rng: random.Random, per_kind: int
) -> Iterator[tuple[dict[str, Any], dict[str, Any], list[str]]]:
    """(target values, distractor values, other-kind context sentences) per scenario."""
    same_domain = [k for k in KINDS if k.domain == kind.domain and k is not kind and k.context]
    for _ in range(per_kind):
        subject, other = rng.sample(kind.subjects, 2)
        target = _values(kind, subject, rng)
        distractor = _values(kind, other, rng, avoid=target)
        extra: list[str] = []
        if same_domain and kind.context:
            k2 = rng.choice(same_domain)
            extra.append(_fill(rng.choice(k2.context), _values(k2, rng.choice(k2.subjects), rng)))
        yield target, distractor, extra


def generate(seed: int = 2026, per_kind: int = 3) -> list[EvalItem]:
    """The labelled set: ``per_kind`` scenarios per kind, each answered in every category (label by category)."""
    rng = random.Random(seed)
    build = _Builder(rng)
    items: list[EvalItem] = []
    for kind in KINDS:
        split = "dev" if kind.name in DEV_KINDS else "test"
        for n, (target, distractor, extra) in enumerate(_scenarios(kind, rng, per_kind)):
            others = [k for k in KINDS if k is not kind]
            question = _fill(rng.choice(kind.question), target)
            docs: list[str] = []
            tool_result: Any = None
            if kind.tool is None:
                docs = [_fill(rng.choice(kind.context), target), _fill(rng.choice(kind.context), distractor), *extra]
                rng.shuffle(docs)
            else:
                recs = [target, distractor]
                rng.shuffle(recs)
                tool_result = kind.tool(recs)

            answers: list[tuple[str, str, str]] = []  # (category, question, answer)
            grounded_cat = "tool_answer" if kind.tool is not None else "copy"
            answers.append((grounded_cat, question, _fill(rng.choice(kind.copy), target)))
            for t in rng.sample(kind.paraphrase, 2):
                answers.append(("paraphrase" if kind.tool is None else "tool_answer", question, _fill(t, target)))
            answers.append(("partial", question, _fill(rng.choice(kind.partial), target)))
            if extra:
                k2_sentence = extra[0]
                answers.append(("multi_fact", question, _fill(rng.choice(kind.paraphrase), target) + " " + k2_sentence))
            absent_q = _fill(rng.choice(kind.absent_question), target)
            refusal = rng.choice(REFUSALS).format(topic=kind.absent_topic)
            answers.append(("correct_refusal", absent_q, refusal))

            wrong = dict(target)
            slot = kind.number_slot
            alternatives = [c for c in kind.slots[slot] if c not in (target[slot], distractor.get(slot))]
            wrong[slot] = rng.choice(alternatives)
            answers.append(("wrong_number", question, _fill(rng.choice((*kind.copy, *kind.paraphrase)), wrong)))
            outsider = rng.choice([s for s in kind.subjects if s not in (target["s"], distractor["s"])])
            answers.append(
                (
                    "swapped_entity",
                    question,
                    _fill(rng.choice((*kind.copy, *kind.paraphrase)), {**target, "s": outsider}),
                )
            )
            answers.append(
                (
                    "entity_binding",
                    question,
                    _fill(rng.choice((*kind.copy, *kind.paraphrase)), {**target, "s": distractor["s"]}),
                )
            )
            answers.append(("negation", question, _fill(rng.choice(kind.negation), target)))
            answers.append(
                (
                    "unsupported_addition",
                    question,
                    _fill(rng.choice(kind.paraphrase), target) + " " + rng.choice(kind.addition),
                )
            )
            answers.append(("fabricated", absent_q, _fill(rng.choice(kind.fabricated), target)))
            # A fabrication borrowed from another domain's wording, so the set does not only test one template.
            borrowed = rng.choice(others)
            answers.append(("fabricated", absent_q, rng.choice(borrowed.addition)))

            for i, (category, q, answer) in enumerate(answers):
                cols = build.document(kind, q, docs) if tool_result is None else build.tool(kind, q, tool_result)
                items.append(
                    EvalItem(
                        id=f"{kind.name}-{n}-{i:02d}",
                        kind=kind.name,
                        domain=kind.domain,
                        category=category,
                        label=CATEGORIES[category],
                        split=split,
                        question=q,
                        answer=answer,
                        input_messages=cols["input_messages"],
                        output_messages=json.dumps(
                            [
                                {
                                    "role": "assistant",
                                    "parts": [{"type": "text", "content": answer}],
                                    "finish_reason": "stop",
                                }
                            ],
                            ensure_ascii=False,
                        ),
                        retrieval_documents=cols.get("retrieval_documents", ""),
                        tool_call_result=cols.get("tool_call_result", ""),
                        system_instructions=cols.get("system_instructions", ""),
                        placement=cols["placement"],
                    )
                )
    return items


def split(items: Sequence[EvalItem], name: str) -> list[EvalItem]:
    """The items of one split (``dev`` or ``test``)."""
    return [it for it in items if it.split == name]
