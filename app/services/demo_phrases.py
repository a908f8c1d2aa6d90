"""The sentences of the demo data (``feedback-service seed``): short, review-style
feedback in seven languages, by topic and tone, each with the tag an agent would give it.

Kept apart from ``demo_data`` so that the generator reads as logic, not as prose. Every
language has the same topics, tones and tags, so a dashboard filtered by tag or topic
looks alike whichever market it shows.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Topic(StrEnum):
    STORE = "store"  # in the shop: staff, queues, shelves
    DELIVERY = "delivery"  # parcels, couriers, returns, refunds
    SERVICE = "service"  # contact centre, chat, billing questions
    DIGITAL = "digital"  # website and app: search, login, payment


class Tone(StrEnum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"


Phrase = tuple[str, str]  # (sentence, tag)
PhraseBook = dict[Topic, dict[Tone, tuple[Phrase, ...]]]

_EN: PhraseBook = {
    Topic.STORE: {
        Tone.POSITIVE: (
            ("Staff were friendly and helped me find the right size.", "staff"),
            ("Quick checkout, no queue at all.", "queue"),
            ("The store was clean and well organised.", "store-layout"),
        ),
        Tone.NEUTRAL: (
            ("Found what I needed, but the shelves were a bit messy.", "store-layout"),
            ("Checkout was okay, nothing special.", "checkout"),
            ("Decent selection, a few sizes were missing.", "availability"),
        ),
        Tone.NEGATIVE: (
            ("Waited 20 minutes at the till with only one register open.", "queue"),
            ("Nobody was around to help on the shop floor.", "staff"),
            ("The item advertised online was out of stock in the store.", "availability"),
        ),
    },
    Topic.DELIVERY: {
        Tone.POSITIVE: (
            ("The parcel arrived a day early and was well packed.", "delivery-speed"),
            ("Tracking was accurate and the courier was polite.", "courier"),
            ("Returning the jacket was easy and the refund came fast.", "returns"),
        ),
        Tone.NEUTRAL: (
            ("Delivery took the promised five days.", "delivery-speed"),
            ("The parcel arrived fine, though the box was far too big.", "packaging"),
            ("The return worked, but the refund took a week.", "returns"),
        ),
        Tone.NEGATIVE: (
            ("My order arrived four days late and nobody told me why.", "late-delivery"),
            ("The box was damaged and one item was missing.", "damaged"),
            ("Still waiting for my refund after three weeks.", "refund"),
        ),
    },
    Topic.SERVICE: {
        Tone.POSITIVE: (
            ("The agent solved my problem in one call.", "first-contact-resolution"),
            ("Very patient and knowledgeable support.", "agent"),
            ("My billing question was answered within minutes.", "billing"),
        ),
        Tone.NEUTRAL: (
            ("Got an answer in the end, after being transferred once.", "transfer"),
            ("Support was polite but had to check with a colleague.", "agent"),
            ("The invoice is correct now.", "billing"),
        ),
        Tone.NEGATIVE: (
            ("I was on hold for 40 minutes and then got cut off.", "wait-time"),
            ("I had to explain the same problem three times.", "repeat-contact"),
            ("I was charged twice and nobody fixes it.", "billing"),
        ),
    },
    Topic.DIGITAL: {
        Tone.POSITIVE: (
            ("The app is fast and checkout takes seconds.", "app-performance"),
            ("Easy to find products with the new search.", "search"),
            ("Setting up my account took two minutes.", "onboarding"),
        ),
        Tone.NEUTRAL: (
            ("The website works, but the filters could be better.", "search"),
            ("Login is fine, though I need a code every time.", "login"),
            ("Checkout worked on the second try.", "checkout"),
        ),
        Tone.NEGATIVE: (
            ("The app crashes every time I open my basket.", "app-crash"),
            ("Could not log in, the password reset email never came.", "login"),
            ("Payment failed three times on the website.", "payment"),
        ),
    },
}

_DE: PhraseBook = {
    Topic.STORE: {
        Tone.POSITIVE: (
            ("Sehr freundliche Beratung, ich hatte sofort die richtige Größe.", "staff"),
            ("Schnell bezahlt, keine Schlange an der Kasse.", "queue"),
            ("Der Laden war sauber und übersichtlich.", "store-layout"),
        ),
        Tone.NEUTRAL: (
            ("Habe alles gefunden, die Regale waren aber etwas unordentlich.", "store-layout"),
            ("Die Kasse war in Ordnung, nichts Besonderes.", "checkout"),
            ("Gute Auswahl, einige Größen fehlten.", "availability"),
        ),
        Tone.NEGATIVE: (
            ("Die Schlange war 20 Minuten lang und nur eine Kasse war offen.", "queue"),
            ("Niemand war da, um zu helfen.", "staff"),
            ("Der online beworbene Artikel war im Laden nicht vorrätig.", "availability"),
        ),
    },
    Topic.DELIVERY: {
        Tone.POSITIVE: (
            ("Das Paket kam einen Tag früher und war gut verpackt.", "delivery-speed"),
            ("Die Sendungsverfolgung stimmte, der Fahrer war sehr nett.", "courier"),
            ("Die Rücksendung war einfach und das Geld schnell zurück.", "returns"),
        ),
        Tone.NEUTRAL: (
            ("Die Lieferung kam wie angekündigt nach fünf Tagen.", "delivery-speed"),
            ("Das Paket kam an, aber der Karton war viel zu groß.", "packaging"),
            ("Die Rücksendung hat geklappt, die Erstattung dauerte eine Woche.", "returns"),
        ),
        Tone.NEGATIVE: (
            (
                "Meine Bestellung kam vier Tage zu spät und niemand hat Bescheid gesagt.",
                "late-delivery",
            ),
            ("Der Karton war beschädigt und ein Artikel fehlte.", "damaged"),
            ("Ich warte seit drei Wochen auf meine Erstattung.", "refund"),
        ),
    },
    Topic.SERVICE: {
        Tone.POSITIVE: (
            ("Der Mitarbeiter hat mein Problem in einem Anruf gelöst.", "first-contact-resolution"),
            ("Sehr geduldiger und kompetenter Kundenservice.", "agent"),
            ("Meine Frage zur Rechnung war in wenigen Minuten geklärt.", "billing"),
        ),
        Tone.NEUTRAL: (
            ("Nach einer Weiterleitung habe ich eine Antwort bekommen.", "transfer"),
            ("Freundlich, musste aber erst bei einer Kollegin nachfragen.", "agent"),
            ("Die Rechnung stimmt jetzt.", "billing"),
        ),
        Tone.NEGATIVE: (
            ("40 Minuten in der Warteschleife und dann wurde aufgelegt.", "wait-time"),
            ("Ich musste mein Problem dreimal erklären.", "repeat-contact"),
            ("Mir wurde doppelt abgebucht und niemand kümmert sich.", "billing"),
        ),
    },
    Topic.DIGITAL: {
        Tone.POSITIVE: (
            ("Die App ist schnell und das Bezahlen dauert Sekunden.", "app-performance"),
            ("Mit der neuen Suche findet man alles sofort.", "search"),
            ("Das Konto war in zwei Minuten eingerichtet.", "onboarding"),
        ),
        Tone.NEUTRAL: (
            ("Die Website funktioniert, die Filter könnten besser sein.", "search"),
            ("Der Login geht, aber jedes Mal mit Code.", "login"),
            ("Die Bestellung hat beim zweiten Versuch geklappt.", "checkout"),
        ),
        Tone.NEGATIVE: (
            ("Die App stürzt jedes Mal ab, wenn ich den Warenkorb öffne.", "app-crash"),
            ("Ich komme nicht rein, die E-Mail zum Zurücksetzen kam nie an.", "login"),
            ("Die Zahlung ist dreimal fehlgeschlagen.", "payment"),
        ),
    },
}

_FR: PhraseBook = {
    Topic.STORE: {
        Tone.POSITIVE: (
            ("Vendeuse très aimable, j'ai trouvé la bonne taille tout de suite.", "staff"),
            ("Passage en caisse rapide, aucune attente.", "queue"),
            ("Magasin propre et bien rangé.", "store-layout"),
        ),
        Tone.NEUTRAL: (
            (
                "J'ai trouvé ce qu'il me fallait, mais les rayons étaient en désordre.",
                "store-layout",
            ),
            ("Caisse correcte, rien de spécial.", "checkout"),
            ("Bon choix, il manquait quelques tailles.", "availability"),
        ),
        Tone.NEGATIVE: (
            ("Vingt minutes d'attente avec une seule caisse ouverte.", "queue"),
            ("Personne pour nous aider dans le magasin.", "staff"),
            ("L'article annoncé en ligne était en rupture en magasin.", "availability"),
        ),
    },
    Topic.DELIVERY: {
        Tone.POSITIVE: (
            ("Colis arrivé un jour en avance et bien emballé.", "delivery-speed"),
            ("Suivi précis et livreur très poli.", "courier"),
            ("Retour facile et remboursement rapide.", "returns"),
        ),
        Tone.NEUTRAL: (
            ("Livraison dans les cinq jours annoncés.", "delivery-speed"),
            ("Colis bien arrivé, mais le carton était bien trop grand.", "packaging"),
            ("Le retour a fonctionné, le remboursement a pris une semaine.", "returns"),
        ),
        Tone.NEGATIVE: (
            (
                "Ma commande est arrivée avec quatre jours de retard, sans explication.",
                "late-delivery",
            ),
            ("Carton abîmé et un article manquant.", "damaged"),
            ("J'attends mon remboursement depuis trois semaines.", "refund"),
        ),
    },
    Topic.SERVICE: {
        Tone.POSITIVE: (
            ("Le conseiller a réglé mon problème en un seul appel.", "first-contact-resolution"),
            ("Service client patient et compétent.", "agent"),
            ("Ma question sur la facture a été réglée en quelques minutes.", "billing"),
        ),
        Tone.NEUTRAL: (
            ("J'ai eu une réponse après un transfert.", "transfer"),
            ("Aimable, mais a dû vérifier auprès d'un collègue.", "agent"),
            ("La facture est correcte maintenant.", "billing"),
        ),
        Tone.NEGATIVE: (
            ("Quarante minutes d'attente au téléphone, puis coupé.", "wait-time"),
            ("J'ai dû expliquer mon problème trois fois.", "repeat-contact"),
            ("J'ai été débité deux fois et personne ne corrige.", "billing"),
        ),
    },
    Topic.DIGITAL: {
        Tone.POSITIVE: (
            ("L'application est rapide et le paiement prend quelques secondes.", "app-performance"),
            ("La nouvelle recherche est très pratique.", "search"),
            ("Compte créé en deux minutes.", "onboarding"),
        ),
        Tone.NEUTRAL: (
            ("Le site fonctionne, mais les filtres pourraient être meilleurs.", "search"),
            ("La connexion marche, mais il faut un code à chaque fois.", "login"),
            ("La commande est passée au deuxième essai.", "checkout"),
        ),
        Tone.NEGATIVE: (
            ("L'application plante dès que j'ouvre mon panier.", "app-crash"),
            ("Impossible de me connecter, l'e-mail de réinitialisation n'arrive jamais.", "login"),
            ("Le paiement a échoué trois fois sur le site.", "payment"),
        ),
    },
}

_ES: PhraseBook = {
    Topic.STORE: {
        Tone.POSITIVE: (
            ("La dependienta fue muy amable y me ayudó con la talla.", "staff"),
            ("Pagué rapidísimo, sin nada de cola.", "queue"),
            ("La tienda estaba limpia y ordenada.", "store-layout"),
        ),
        Tone.NEUTRAL: (
            (
                "Encontré lo que buscaba, aunque los estantes estaban algo desordenados.",
                "store-layout",
            ),
            ("La caja bien, nada especial.", "checkout"),
            ("Buena variedad, faltaban algunas tallas.", "availability"),
        ),
        Tone.NEGATIVE: (
            ("Veinte minutos de cola con una sola caja abierta.", "queue"),
            ("No había nadie para atendernos.", "staff"),
            ("El artículo anunciado en la web estaba agotado en la tienda.", "availability"),
        ),
    },
    Topic.DELIVERY: {
        Tone.POSITIVE: (
            ("El paquete llegó un día antes y bien embalado.", "delivery-speed"),
            ("El seguimiento fue exacto y el repartidor muy amable.", "courier"),
            ("La devolución fue fácil y el reembolso llegó enseguida.", "returns"),
        ),
        Tone.NEUTRAL: (
            ("La entrega llegó en los cinco días previstos.", "delivery-speed"),
            ("El paquete llegó bien, pero la caja era enorme.", "packaging"),
            ("La devolución funcionó, el reembolso tardó una semana.", "returns"),
        ),
        Tone.NEGATIVE: (
            ("Mi pedido llegó con cuatro días de retraso y nadie avisó.", "late-delivery"),
            ("La caja llegó dañada y faltaba un artículo.", "damaged"),
            ("Llevo tres semanas esperando el reembolso.", "refund"),
        ),
    },
    Topic.SERVICE: {
        Tone.POSITIVE: (
            ("El agente resolvió mi problema en una sola llamada.", "first-contact-resolution"),
            ("Atención al cliente paciente y competente.", "agent"),
            ("Resolvieron mi duda sobre la factura en minutos.", "billing"),
        ),
        Tone.NEUTRAL: (
            ("Me respondieron después de una transferencia.", "transfer"),
            ("Amables, pero tuvieron que consultar con un compañero.", "agent"),
            ("La factura ya está correcta.", "billing"),
        ),
        Tone.NEGATIVE: (
            ("Cuarenta minutos en espera y luego se cortó la llamada.", "wait-time"),
            ("Tuve que explicar el problema tres veces.", "repeat-contact"),
            ("Me cobraron dos veces y nadie lo soluciona.", "billing"),
        ),
    },
    Topic.DIGITAL: {
        Tone.POSITIVE: (
            ("La app es rápida y el pago se hace en segundos.", "app-performance"),
            ("Con el nuevo buscador se encuentra todo.", "search"),
            ("Creé la cuenta en dos minutos.", "onboarding"),
        ),
        Tone.NEUTRAL: (
            ("La web funciona, pero los filtros podrían mejorar.", "search"),
            ("El acceso va bien, aunque piden un código cada vez.", "login"),
            ("El pedido salió al segundo intento.", "checkout"),
        ),
        Tone.NEGATIVE: (
            ("La app se cierra cada vez que abro la cesta.", "app-crash"),
            ("No puedo entrar, nunca llega el correo para cambiar la contraseña.", "login"),
            ("El pago falló tres veces en la web.", "payment"),
        ),
    },
}

_NL: PhraseBook = {
    Topic.STORE: {
        Tone.POSITIVE: (
            ("Vriendelijke medewerker die me meteen aan de juiste maat hielp.", "staff"),
            ("Snel afgerekend, geen rij bij de kassa.", "queue"),
            ("De winkel was schoon en overzichtelijk.", "store-layout"),
        ),
        Tone.NEUTRAL: (
            ("Ik vond wat ik zocht, maar de schappen waren wat rommelig.", "store-layout"),
            ("Afrekenen ging prima, niets bijzonders.", "checkout"),
            ("Goed assortiment, een paar maten ontbraken.", "availability"),
        ),
        Tone.NEGATIVE: (
            ("Twintig minuten in de rij met maar één kassa open.", "queue"),
            ("Er was niemand om te helpen.", "staff"),
            ("Het artikel uit de online actie was niet op voorraad in de winkel.", "availability"),
        ),
    },
    Topic.DELIVERY: {
        Tone.POSITIVE: (
            ("Het pakket kwam een dag eerder en was goed verpakt.", "delivery-speed"),
            ("Track & trace klopte en de bezorger was erg beleefd.", "courier"),
            ("Retourneren was makkelijk en het geld stond snel terug.", "returns"),
        ),
        Tone.NEUTRAL: (
            ("Levering binnen de beloofde vijf dagen.", "delivery-speed"),
            ("Het pakket kwam goed aan, maar de doos was veel te groot.", "packaging"),
            ("Retour ging goed, de terugbetaling duurde een week.", "returns"),
        ),
        Tone.NEGATIVE: (
            (
                "Mijn bestelling kwam vier dagen te laat en niemand liet iets weten.",
                "late-delivery",
            ),
            ("De doos was beschadigd en er ontbrak een artikel.", "damaged"),
            ("Ik wacht al drie weken op mijn terugbetaling.", "refund"),
        ),
    },
    Topic.SERVICE: {
        Tone.POSITIVE: (
            ("De medewerker loste mijn probleem in één gesprek op.", "first-contact-resolution"),
            ("Geduldige en deskundige klantenservice.", "agent"),
            ("Mijn vraag over de factuur was binnen een paar minuten beantwoord.", "billing"),
        ),
        Tone.NEUTRAL: (
            ("Na één keer doorverbinden kreeg ik antwoord.", "transfer"),
            ("Vriendelijk, maar moest het eerst navragen bij een collega.", "agent"),
            ("De factuur klopt nu.", "billing"),
        ),
        Tone.NEGATIVE: (
            ("Veertig minuten in de wacht en toen werd de verbinding verbroken.", "wait-time"),
            ("Ik moest mijn probleem drie keer uitleggen.", "repeat-contact"),
            ("Er is twee keer afgeschreven en niemand lost het op.", "billing"),
        ),
    },
    Topic.DIGITAL: {
        Tone.POSITIVE: (
            ("De app is snel en afrekenen duurt een paar seconden.", "app-performance"),
            ("Met de nieuwe zoekfunctie vind je alles meteen.", "search"),
            ("Mijn account was in twee minuten aangemaakt.", "onboarding"),
        ),
        Tone.NEUTRAL: (
            ("De website werkt, maar de filters kunnen beter.", "search"),
            ("Inloggen lukt, al moet er elke keer een code bij.", "login"),
            ("De bestelling lukte bij de tweede poging.", "checkout"),
        ),
        Tone.NEGATIVE: (
            ("De app crasht elke keer als ik mijn winkelmandje open.", "app-crash"),
            ("Ik kan niet inloggen, de resetmail komt nooit aan.", "login"),
            ("De betaling is drie keer mislukt op de website.", "payment"),
        ),
    },
}

_IT: PhraseBook = {
    Topic.STORE: {
        Tone.POSITIVE: (
            ("Commessa gentilissima, mi ha trovato subito la taglia giusta.", "staff"),
            ("Pagamento veloce, nessuna coda alla cassa.", "queue"),
            ("Negozio pulito e ordinato.", "store-layout"),
        ),
        Tone.NEUTRAL: (
            ("Ho trovato quello che cercavo, ma gli scaffali erano in disordine.", "store-layout"),
            ("Cassa nella norma, niente di speciale.", "checkout"),
            ("Buona scelta, mancavano alcune taglie.", "availability"),
        ),
        Tone.NEGATIVE: (
            ("Venti minuti di coda con una sola cassa aperta.", "queue"),
            ("Non c'era nessuno ad aiutare.", "staff"),
            ("L'articolo pubblicizzato online non era disponibile in negozio.", "availability"),
        ),
    },
    Topic.DELIVERY: {
        Tone.POSITIVE: (
            ("Pacco arrivato un giorno prima e ben imballato.", "delivery-speed"),
            ("Tracciamento preciso e corriere molto cortese.", "courier"),
            ("Reso semplice e rimborso velocissimo.", "returns"),
        ),
        Tone.NEUTRAL: (
            ("Consegna nei cinque giorni previsti.", "delivery-speed"),
            ("Pacco arrivato, ma la scatola era enorme.", "packaging"),
            ("Il reso è andato bene, il rimborso ha richiesto una settimana.", "returns"),
        ),
        Tone.NEGATIVE: (
            (
                "Il mio ordine è arrivato con quattro giorni di ritardo, senza avvisi.",
                "late-delivery",
            ),
            ("Scatola danneggiata e un articolo mancante.", "damaged"),
            ("Aspetto il rimborso da tre settimane.", "refund"),
        ),
    },
    Topic.SERVICE: {
        Tone.POSITIVE: (
            (
                "L'operatore ha risolto il mio problema con una sola chiamata.",
                "first-contact-resolution",
            ),
            ("Assistenza paziente e competente.", "agent"),
            ("Risposta alla mia domanda sulla fattura in pochi minuti.", "billing"),
        ),
        Tone.NEUTRAL: (
            ("Ho avuto una risposta dopo un trasferimento.", "transfer"),
            ("Gentili, ma hanno dovuto chiedere a un collega.", "agent"),
            ("Ora la fattura è corretta.", "billing"),
        ),
        Tone.NEGATIVE: (
            ("Quaranta minuti in attesa e poi la linea è caduta.", "wait-time"),
            ("Ho dovuto spiegare il problema tre volte.", "repeat-contact"),
            ("Mi hanno addebitato due volte e nessuno risolve.", "billing"),
        ),
    },
    Topic.DIGITAL: {
        Tone.POSITIVE: (
            ("L'app è veloce e il pagamento richiede pochi secondi.", "app-performance"),
            ("Con la nuova ricerca si trova tutto subito.", "search"),
            ("Account creato in due minuti.", "onboarding"),
        ),
        Tone.NEUTRAL: (
            ("Il sito funziona, ma i filtri potrebbero essere migliori.", "search"),
            ("L'accesso funziona, però serve un codice ogni volta.", "login"),
            ("L'ordine è andato a buon fine al secondo tentativo.", "checkout"),
        ),
        Tone.NEGATIVE: (
            ("L'app si blocca ogni volta che apro il carrello.", "app-crash"),
            ("Non riesco ad accedere, l'email per reimpostare la password non arriva.", "login"),
            ("Il pagamento è fallito tre volte sul sito.", "payment"),
        ),
    },
}

_PT: PhraseBook = {
    Topic.STORE: {
        Tone.POSITIVE: (
            ("A funcionária foi muito simpática e ajudou-me com o tamanho certo.", "staff"),
            ("Pagamento rápido, sem fila nenhuma.", "queue"),
            ("A loja estava limpa e bem organizada.", "store-layout"),
        ),
        Tone.NEUTRAL: (
            ("Encontrei o que precisava, mas as prateleiras estavam desarrumadas.", "store-layout"),
            ("A caixa correu bem, nada de especial.", "checkout"),
            ("Boa variedade, faltavam alguns tamanhos.", "availability"),
        ),
        Tone.NEGATIVE: (
            ("Vinte minutos na fila com apenas uma caixa aberta.", "queue"),
            ("Não havia ninguém para ajudar.", "staff"),
            ("O artigo anunciado online estava esgotado na loja.", "availability"),
        ),
    },
    Topic.DELIVERY: {
        Tone.POSITIVE: (
            ("A encomenda chegou um dia antes e bem embalada.", "delivery-speed"),
            ("O seguimento estava certo e o estafeta foi muito educado.", "courier"),
            ("A devolução foi fácil e o reembolso chegou depressa.", "returns"),
        ),
        Tone.NEUTRAL: (
            ("A entrega chegou nos cinco dias previstos.", "delivery-speed"),
            ("A encomenda chegou bem, mas a caixa era enorme.", "packaging"),
            ("A devolução funcionou, o reembolso demorou uma semana.", "returns"),
        ),
        Tone.NEGATIVE: (
            (
                "A minha encomenda chegou com quatro dias de atraso e ninguém avisou.",
                "late-delivery",
            ),
            ("A caixa chegou danificada e faltava um artigo.", "damaged"),
            ("Estou há três semanas à espera do reembolso.", "refund"),
        ),
    },
    Topic.SERVICE: {
        Tone.POSITIVE: (
            ("O assistente resolveu o meu problema numa só chamada.", "first-contact-resolution"),
            ("Apoio ao cliente paciente e competente.", "agent"),
            ("A minha dúvida sobre a fatura foi esclarecida em minutos.", "billing"),
        ),
        Tone.NEUTRAL: (
            ("Tive resposta depois de ser transferido uma vez.", "transfer"),
            ("Simpáticos, mas tiveram de confirmar com um colega.", "agent"),
            ("A fatura já está correta.", "billing"),
        ),
        Tone.NEGATIVE: (
            ("Quarenta minutos em espera e depois a chamada caiu.", "wait-time"),
            ("Tive de explicar o problema três vezes.", "repeat-contact"),
            ("Cobraram-me duas vezes e ninguém resolve.", "billing"),
        ),
    },
    Topic.DIGITAL: {
        Tone.POSITIVE: (
            ("A app é rápida e o pagamento demora segundos.", "app-performance"),
            ("Com a nova pesquisa encontra-se tudo logo.", "search"),
            ("Criei a conta em dois minutos.", "onboarding"),
        ),
        Tone.NEUTRAL: (
            ("O site funciona, mas os filtros podiam ser melhores.", "search"),
            ("O login funciona, mas pede sempre um código.", "login"),
            ("A encomenda só passou à segunda tentativa.", "checkout"),
        ),
        Tone.NEGATIVE: (
            ("A app fecha sempre que abro o carrinho.", "app-crash"),
            ("Não consigo entrar, o email para repor a palavra-passe nunca chega.", "login"),
            ("O pagamento falhou três vezes no site.", "payment"),
        ),
    },
}

# language -> topic -> tone -> sentences
PHRASES: Final[dict[str, PhraseBook]] = {
    "en": _EN,
    "de": _DE,
    "fr": _FR,
    "es": _ES,
    "nl": _NL,
    "it": _IT,
    "pt": _PT,
}

# A second sentence some customers add; only the tone has to fit.
CLOSERS: Final[dict[str, dict[Tone, tuple[str, ...]]]] = {
    "en": {
        Tone.POSITIVE: ("Will definitely come back.", "Highly recommended!", "Thank you!"),
        Tone.NEUTRAL: ("It was okay.", "Room for improvement.", "Nothing more to add."),
        Tone.NEGATIVE: (
            "Very disappointed.",
            "Not what I expect from you.",
            "I will think twice before ordering again.",
        ),
    },
    "de": {
        Tone.POSITIVE: ("Gerne wieder!", "Absolut empfehlenswert.", "Vielen Dank!"),
        Tone.NEUTRAL: ("War in Ordnung.", "Da ist noch Luft nach oben.", "Sonst alles gut."),
        Tone.NEGATIVE: (
            "Sehr enttäuschend.",
            "So geht das nicht.",
            "Ich überlege mir gut, ob ich hier noch bestelle.",
        ),
    },
    "fr": {
        Tone.POSITIVE: ("Je reviendrai sans hésiter.", "Je recommande vivement !", "Merci !"),
        Tone.NEUTRAL: ("C'était correct.", "Peut mieux faire.", "Rien d'autre à signaler."),
        Tone.NEGATIVE: (
            "Très déçu.",
            "Inacceptable.",
            "Je réfléchirai avant de commander à nouveau.",
        ),
    },
    "es": {
        Tone.POSITIVE: ("Volveré seguro.", "¡Muy recomendable!", "¡Muchas gracias!"),
        Tone.NEUTRAL: ("Estuvo bien.", "Se puede mejorar.", "Nada más que añadir."),
        Tone.NEGATIVE: (
            "Muy decepcionado.",
            "Inaceptable.",
            "Me lo pensaré antes de volver a comprar.",
        ),
    },
    "nl": {
        Tone.POSITIVE: ("Ik kom zeker terug.", "Echt een aanrader!", "Bedankt!"),
        Tone.NEUTRAL: ("Het was oké.", "Kan beter.", "Verder niets toe te voegen."),
        Tone.NEGATIVE: (
            "Erg teleurgesteld.",
            "Dit kan echt niet.",
            "Ik bestel hier voorlopig niet meer.",
        ),
    },
    "it": {
        Tone.POSITIVE: ("Tornerò sicuramente.", "Consigliatissimo!", "Grazie mille!"),
        Tone.NEUTRAL: ("Tutto sommato ok.", "Si può migliorare.", "Nient'altro da aggiungere."),
        Tone.NEGATIVE: (
            "Molto deluso.",
            "Inaccettabile.",
            "Ci penserò due volte prima di ordinare di nuovo.",
        ),
    },
    "pt": {
        Tone.POSITIVE: ("Vou voltar de certeza.", "Recomendo vivamente!", "Muito obrigado!"),
        Tone.NEUTRAL: ("Foi razoável.", "Há espaço para melhorar.", "Nada mais a acrescentar."),
        Tone.NEGATIVE: (
            "Muito desiludido.",
            "Inaceitável.",
            "Vou pensar duas vezes antes de voltar a comprar.",
        ),
    },
}
