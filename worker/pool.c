/*
 * pool.c - a small fixed thread pool with a FIFO of jobs and a FIFO of
 * finished jobs, under one mutex (jobs are few and long: an fdatasync costs
 * far more than the lock).
 */
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>

#include "dotdb.h"

typedef struct job {
    wk_fn fn;
    void *arg;
    struct job *next;
} job;

struct wk_pool {
    pthread_mutex_t mu;
    pthread_cond_t work;   /* a job was queued, or stopping */
    pthread_cond_t idle;   /* a job finished */
    job *head, *tail;      /* queued */
    job *dhead, *dtail;    /* finished, waiting for wk_collect */
    int running;           /* jobs being run right now */
    int stopping;
    int nthreads;
    pthread_t *threads;
    void (*notify)(void *);
    void *notify_arg;
};

static void *worker_main(void *arg)
{
    wk_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->head == NULL)
            break;
        job *j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg);
        pthread_mutex_lock(&p->mu);
        p->running--;
        j->next = NULL;
        if (p->dtail)
            p->dtail->next = j;
        else
            p->dhead = j;
        p->dtail = j;
        pthread_cond_broadcast(&p->idle);
        pthread_mutex_unlock(&p->mu);
        p->notify(p->notify_arg);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int wk_create(int nthreads, void (*notify)(void *), void *notify_arg, wk_pool **out)
{
    *out = NULL;
    wk_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return DOTDB_ENOMEM;
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    if (p->threads == NULL) {
        free(p);
        return DOTDB_ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    p->notify = notify;
    p->notify_arg = notify_arg;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            wk_destroy(p);
            return DOTDB_EOS;
        }
        p->nthreads++;
    }
    *out = p;
    return 0;
}

int wk_submit(wk_pool *p, wk_fn fn, void *arg)
{
    job *j = malloc(sizeof *j);
    if (j == NULL)
        return DOTDB_ENOMEM;
    *j = (job){fn, arg, NULL};
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t wk_collect(wk_pool *p, void (*done)(void *arg, void *ctx), void *ctx)
{
    pthread_mutex_lock(&p->mu);
    job *j = p->dhead;
    p->dhead = p->dtail = NULL;
    pthread_mutex_unlock(&p->mu);
    size_t n = 0;
    while (j) {
        job *next = j->next;
        done(j->arg, ctx);
        free(j);
        j = next;
        n++;
    }
    return n;
}

void wk_wait_idle(wk_pool *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->head || p->running)
        pthread_cond_wait(&p->idle, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void wk_destroy(wk_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    for (job *j = p->dhead, *n; j; j = n) {
        n = j->next;
        free(j);
    }
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
