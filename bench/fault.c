/* Fault in SIZE bytes of anonymous memory: plain 4 KiB pages, MADV_HUGEPAGE, MAP_POPULATE, and
   read() from a page-cached file into fresh memory (what an eager restore does). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static char *map(size_t n,int extra){char*p=mmap(0,n,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|extra,-1,0);if(p==MAP_FAILED){perror("mmap");exit(1);}return p;}
int main(int argc,char**argv){
  size_t n=(size_t)(argc>1?atof(argv[1]):1.4)*1000*1000*1000; n&=~((size_t)(2<<20)-1);
  const char*file=argc>2?argv[2]:0; double t; char*p;
  t=now(); p=map(n,0); for(size_t i=0;i<n;i+=4096)p[i]=1; printf("touch_4k_s %.3f\n",now()-t); munmap(p,n);
  t=now(); p=map(n,0); madvise(p,n,MADV_HUGEPAGE); for(size_t i=0;i<n;i+=4096)p[i]=1; printf("touch_madv_hugepage_s %.3f\n",now()-t); munmap(p,n);
  t=now(); p=map(n,MAP_POPULATE); printf("map_populate_s %.3f\n",now()-t); munmap(p,n);
  t=now(); p=map(n,0); char*q=map(n,MAP_POPULATE); double t2=now(); memcpy(p,q,n); printf("memcpy_into_fresh_s %.3f\n",now()-t2); munmap(p,n); munmap(q,n);
  if(file){int fd=open(file,O_RDONLY); if(fd<0){perror(file);return 1;}
    p=map(n,0); t=now(); size_t done=0; ssize_t r; while(done<n&&(r=pread(fd,p+done,n-done<(64<<20)?n-done:(64<<20),done))>0)done+=r;
    printf("pread_into_fresh_s %.3f bytes %zu\n",now()-t,done); munmap(p,n); close(fd);}
  return 0;}
