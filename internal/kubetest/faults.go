package kubetest

import (
	"errors"
	"syscall"
	"time"
)

// signal sends sig to the process group of p.
func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return errors.New("kubetest: " + p.name + " is not running")
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// kill SIGKILLs the process group at once (no SIGTERM, no grace) and waits
// until the process is reaped. stop is a no-op afterwards.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// KillAPIServer SIGKILLs this apiserver, as a crashed or OOM-killed one:
// no graceful shutdown, no Retry-After, every connection reset by the
// kernel. StartAPIServer starts it again (same port, flags and data). It
// returns how long the kill took to be reaped.
func (a *APIServer) KillAPIServer() time.Duration {
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	start := time.Now()
	if p != nil {
		p.kill()
		a.cluster.opts.logf("kubetest: kube-apiserver %s killed", a.URL)
	}
	return time.Since(start)
}

// PauseEtcd freezes etcd with SIGSTOP: its sockets stay open but it
// answers nothing (as a stalled disk or a stopped VM would), so the
// apiserver's writes and quorum reads hang. ResumeEtcd (SIGCONT) undoes
// it; Stop resumes a paused etcd before stopping it.
func (c *Cluster) PauseEtcd() error {
	if c.etcd == nil {
		return errors.New("kubetest: no etcd")
	}
	c.opts.logf("kubetest: etcd paused (SIGSTOP)")
	return c.etcd.signal(syscall.SIGSTOP)
}

// ResumeEtcd continues a paused etcd (SIGCONT); harmless when it runs.
func (c *Cluster) ResumeEtcd() error {
	if c.etcd == nil {
		return errors.New("kubetest: no etcd")
	}
	c.opts.logf("kubetest: etcd resumed (SIGCONT)")
	return c.etcd.signal(syscall.SIGCONT)
}
