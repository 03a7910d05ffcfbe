package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrExited reports that a lab process ended while it was still needed.
var ErrExited = errors.New("lab: process exited")

// ErrTimeout reports that a condition polled by the lab never came true.
var ErrTimeout = errors.New("lab: timed out")

// Proc is a program started by the lab. Its combined output goes to a log
// file. It runs in its own process group (so a terminal's Ctrl-C reaches
// only the lab's owner, which then tears the lab down) and gets SIGKILL if
// the owner dies (Pdeathsig).
type Proc struct {
	Name    string    // short name used in messages, e.g. "seeder-127.0.0.2"
	LogPath string    // combined stdout+stderr
	Cmd     *exec.Cmd // Cmd.ProcessState (rusage included) is valid after Done
	Started time.Time
	done    chan struct{}
	ended   time.Time
	waitErr error
}

// StartProc starts cmd (which must not have been started, and whose
// Stdout/Stderr must be unset) with its output in logPath, and registers on
// cl a kill of its process group followed by a wait. Run programs directly,
// not through a shell: rusage then describes the program itself.
func StartProc(cl *Cleanup, name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", name, err)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	p := &Proc{Name: name, LogPath: logPath, Cmd: cmd, done: make(chan struct{})}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("lab: start %s (%s): %w", name, cmd.Path, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		p.ended = time.Now()
		logf.Close()
		close(p.done)
	}()
	cl.Add(p.Stop)
	return p, nil
}

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the exec.Cmd.Wait error; valid after Done.
func (p *Proc) Err() error {
	<-p.done
	return p.waitErr
}

// Ended is when the exit was observed; valid after Done.
func (p *Proc) Ended() time.Time {
	<-p.done
	return p.ended
}

// Stop kills the whole process group with SIGKILL and waits for the
// process to be reaped. It is idempotent.
func (p *Proc) Stop() {
	if !p.Exited() {
		// Negative pid: the process group created by Setpgid.
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// Interrupt sends sig to the process group, then waits up to grace for the
// process to exit before killing it. It reports whether it exited by itself.
func (p *Proc) Interrupt(sig syscall.Signal, grace time.Duration) bool {
	if p.Exited() {
		return true
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, sig)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.Stop()
		return false
	}
}

// Tail returns the last n bytes of the process's log, for error messages.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// exitedErr describes an unexpected exit of p, with the end of its log.
func (p *Proc) exitedErr() error {
	return fmt.Errorf("%w: %s: %v; log %s ends with: %s", ErrExited, p.Name, p.waitErr, p.LogPath, p.Tail(600))
}
