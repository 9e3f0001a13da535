/*
 * demo.c — deterministic demo data.
 */
#include "demo/demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cas/cas.h"
#include "ds/op.h"

/* xorshift64*: reproducible bytes, not randomness anyone relies on. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rng_next(&s);
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

struct ctx {
    demo_emit_fn emit;
    void *arg;
    struct ds_req req;
};

/* Store bytes, return their address in out (b3:...). */
static int put_obj(struct ctx *c, const void *p, size_t n, char out[CAS_ADDR_CHARS + 1])
{
    struct cas_addr a;
    cas_hash(p, n, &a);
    cas_addr_format(&a, out);
    (void)ds_op_put(&c->req, &a); /* cannot fail: no string */
    return c->emit(c->arg, &c->req.op, p, n);
}

static int put_name(struct ctx *c, const char *name, const char *manifest)
{
    if (ds_op_index_put(&c->req, name, strlen(name)) != 0)
        return -1;
    return c->emit(c->arg, &c->req.op, (const uint8_t *)manifest, strlen(manifest));
}

static int send_msg(struct ctx *c, const char *channel, const char *body, const char *key)
{
    if (ds_op_send(&c->req, channel, key) != 0)
        return -1;
    return c->emit(c->arg, &c->req.op, (const uint8_t *)body, strlen(body));
}

/* A small image-like object: PNG signature followed by seeded bytes. */
static size_t fake_png(uint8_t *buf, size_t n, uint64_t seed)
{
    static const uint8_t SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    fill(buf, n, seed);
    memcpy(buf, SIG, sizeof(SIG));
    return n;
}

static const char *const FIRST[] = {"Ada",      "Grace",  "Linus",   "Barbara", "Ken",
                                    "Margaret", "Dennis", "Frances", "Edsger",  "Radia"};
static const char *const TOPICS[] = {"caching",      "hashing",   "queues",  "streams",
                                     "backpressure", "deadlines", "retries", "ranges",
                                     "capabilities", "policy"};

int demo_generate(demo_emit_fn emit, void *arg)
{
    struct ctx c = {.emit = emit, .arg = arg};
    char doc[1024], man[2048], name[64], ch[64], key[64], body[512];
    char prof[CAS_ADDR_CHARS + 1], avatar[CAS_ADDR_CHARS + 1], art[CAS_ADDR_CHARS + 1],
        hero[CAS_ADDR_CHARS + 1];
    static char article_addr[DEMO_ARTICLES][CAS_ADDR_CHARS + 1];
    uint8_t img[8192];
    int rc;

    /* Media: a few MiB of clips, streamed and ranged by /v1/media/{name}. */
    static const size_t CLIP_BYTES[DEMO_CLIPS] = {512 << 10, 1 << 20, 2 << 20, 4 << 20};
    for (int i = 0; i < DEMO_CLIPS; i++) {
        uint8_t *p = malloc(CLIP_BYTES[i]);
        char a[CAS_ADDR_CHARS + 1];
        if (p == NULL)
            return -1;
        fill(p, CLIP_BYTES[i], 0xC11Bull + (uint64_t)i);
        rc = put_obj(&c, p, CLIP_BYTES[i], a);
        free(p);
        if (rc)
            return rc;
        snprintf(name, sizeof(name), "clip-%d", i + 1);
        snprintf(man, sizeof(man),
                 "{\"kind\":\"media\",\"title\":\"Clip %d\",\"obj\":\"%s\","
                 "\"media_type\":\"video/mp4\",\"size\":%zu}",
                 i + 1, a, CLIP_BYTES[i]);
        if ((rc = put_name(&c, name, man)))
            return rc;
    }

    /* Articles: a JSON document, a hero image, a comments channel. */
    for (int i = 0; i < DEMO_ARTICLES; i++) {
        int author = (i * 7) % DEMO_USERS;
        snprintf(doc, sizeof(doc),
                 "{\"id\":\"article-%03d\",\"title\":\"Notes on %s, part %d\","
                 "\"author\":\"user-%03d\",\"words\":%d,\"summary\":\"How an edge service "
                 "handles %s without surprises.\"}",
                 i, TOPICS[i % 10], i / 10 + 1, author, 400 + (i * 37) % 1600, TOPICS[i % 10]);
        if ((rc = put_obj(&c, doc, strlen(doc), art)))
            return rc;
        memcpy(article_addr[i], art, sizeof(art));
        size_t n = fake_png(img, 2048 + (size_t)(i % 8) * 512, 0xA47ull + (uint64_t)i);
        if ((rc = put_obj(&c, img, n, hero)))
            return rc;
        snprintf(name, sizeof(name), "article-%03d", i);
        snprintf(man, sizeof(man),
                 "{\"kind\":\"view\",\"title\":\"Notes on %s, part %d\",\"parts\":{"
                 "\"body\":{\"type\":\"object\",\"obj\":\"%s\",\"media_type\":\"application/json\","
                 "\"required\":true},"
                 "\"hero\":{\"type\":\"object\",\"obj\":\"%s\",\"media_type\":\"image/png\"},"
                 "\"author\":{\"type\":\"index\",\"name\":\"user-%03d\"},"
                 "\"comments\":{\"type\":\"mailbox\",\"channel\":\"comments-article-%03d\","
                 "\"limit\":5}}}",
                 TOPICS[i % 10], i / 10 + 1, art, hero, author, i);
        if ((rc = put_name(&c, name, man)))
            return rc;
        snprintf(ch, sizeof(ch), "comments-article-%03d", i);
        for (int k = 0; k < 2 + i % 4; k++) {
            snprintf(body, sizeof(body), "{\"from\":\"user-%03d\",\"text\":\"Comment %d on %s\"}",
                     (i + k * 13) % DEMO_USERS, k + 1, TOPICS[i % 10]);
            snprintf(key, sizeof(key), "demo-c-%d-%d", i, k);
            if ((rc = send_msg(&c, ch, body, key)))
                return rc;
        }
    }

    /* Users: profile JSON, avatar, inbox channel. */
    for (int i = 0; i < DEMO_USERS; i++) {
        snprintf(doc, sizeof(doc),
                 "{\"id\":\"user-%03d\",\"name\":\"%s %03d\",\"bio\":\"Writes about %s.\","
                 "\"joined\":%d}",
                 i, FIRST[i % 10], i, TOPICS[i % 10], 2015 + i % 10);
        if ((rc = put_obj(&c, doc, strlen(doc), prof)))
            return rc;
        size_t n = fake_png(img, 1024 + (size_t)(i % 4) * 1024, 0xAFAull + (uint64_t)i);
        if ((rc = put_obj(&c, img, n, avatar)))
            return rc;
        snprintf(name, sizeof(name), "user-%03d", i);
        snprintf(
            man, sizeof(man),
            "{\"kind\":\"view\",\"title\":\"%s %03d\",\"parts\":{"
            "\"profile\":{\"type\":\"object\",\"obj\":\"%s\",\"media_type\":\"application/json\","
            "\"required\":true},"
            "\"avatar\":{\"type\":\"object\",\"obj\":\"%s\",\"media_type\":\"image/png\"},"
            "\"inbox\":{\"type\":\"mailbox\",\"channel\":\"user-%03d\",\"limit\":3}}}",
            FIRST[i % 10], i, prof, avatar, i);
        if ((rc = put_name(&c, name, man)))
            return rc;
        snprintf(ch, sizeof(ch), "user-%03d", i);
        for (int k = 0; k < 3; k++) {
            int a = (i + k * 11) % DEMO_ARTICLES;
            snprintf(body, sizeof(body),
                     "{\"type\":\"recommendation\",\"article\":\"article-%03d\",\"obj\":\"%s\"}", a,
                     article_addr[a]);
            snprintf(key, sizeof(key), "demo-u-%d-%d", i, k);
            if ((rc = send_msg(&c, ch, body, key)))
                return rc;
        }
    }

    /* A news feed referencing articles (pull-on-read join in /v1/feed). */
    for (int k = 0; k < 50; k++) {
        int a = (k * 3) % DEMO_ARTICLES;
        snprintf(body, sizeof(body),
                 "{\"type\":\"published\",\"article\":\"article-%03d\",\"obj\":\"%s\"}", a,
                 article_addr[a]);
        snprintf(key, sizeof(key), "demo-n-%d", k);
        if ((rc = send_msg(&c, "news", body, key)))
            return rc;
    }
    return 0;
}
