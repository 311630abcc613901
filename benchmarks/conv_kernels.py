import time, numpy as np, torch, sys
from cnn import _core
torch.set_num_threads(1); _core.set_num_threads(1)
def med(f, r=7, k=5):
    ts=[]
    for _ in range(r):
        t=time.perf_counter()
        for _ in range(k): f()
        ts.append((time.perf_counter()-t)/k)
    return np.min(ts)*1e3
rng=np.random.default_rng(0)
for (c,h,oc,k,g) in [(1,32,6,5,1),(6,28,6,1,6),(6,14,16,5,1),(16,5,120,5,1)]:
    n=32
    x=rng.standard_normal((n,c,h,h)).astype(np.float32); w=rng.standard_normal((oc,c//g,k,k)).astype(np.float32); b=np.zeros(oc,np.float32)
    geo=((1,1),(0,0,0,0),(1,1),g)
    S=_core.conv2d_scratch_size(x.shape,w.shape,*geo); sc=np.empty(S,np.float32) if S else None
    oh=h-k+1; y=np.empty((n,oc,oh,oh),np.float32); dy=rng.standard_normal(y.shape).astype(np.float32)
    dx=np.empty_like(x); dw=np.zeros_like(w); db=np.zeros_like(b)
    f=lambda: _core.conv2d_forward(y,x,w,b,sc,*geo)
    bk=lambda: _core.conv2d_backward(dx,dw,db,dy,x,w,sc,*geo)
    xt=torch.tensor(x,requires_grad=True); wt=torch.tensor(w,requires_grad=True); bt=torch.tensor(b,requires_grad=True)
    tf=lambda: torch.nn.functional.conv2d(xt,wt,bt,groups=g)
    yt=tf(); dyt=torch.tensor(dy)
    def tb():
        yt=tf(); torch.autograd.grad(yt,(xt,wt,bt),dyt)
    print(c,h,oc,k,g, f"cnn fwd {med(f):.3f} bwd {med(bk):.3f} | torch fwd {med(tf):.3f} fwd+bwd {med(tb):.3f}")
