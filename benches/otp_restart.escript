#!/usr/bin/env escript
%%! +S 2
%% Baseline for benches/supervision.rs `restart/worker`: the same restart in
%% Erlang/OTP on the same machine. A permanent gen_server under a one_for_one
%% supervisor crashes; we time until the restarted child (a new pid, looked
%% up through the supervisor) answers a call.
%%
%% Run: escript benches/otp_restart.escript   (needs Debian's erlang-base)
-mode(compile).
-export([init/1, handle_call/3, handle_cast/2]).

-define(SAMPLES, 2000).

main(_) ->
    logger:set_primary_config(level, none),
    {ok, Sup} = supervisor:start_link(?MODULE, sup),
    unlink(Sup),
    _ = [restart_once(Sup) || _ <- lists:seq(1, 200)],
    Samples = lists:sort([restart_once(Sup) || _ <- lists:seq(1, ?SAMPLES)]),
    N = length(Samples),
    Mean = lists:sum(Samples) / N,
    P = fun(Q) -> lists:nth(trunc((N - 1) * Q) + 1, Samples) end,
    io:format("otp/restart/worker: n=~b mean=~.1fus p50=~.1fus p99=~.1fus max=~.1fus (OTP ~s)~n",
              [N, Mean, float(P(0.5)), float(P(0.99)), float(lists:last(Samples)),
               erlang:system_info(otp_release)]).

restart_once(Sup) ->
    Old = child(Sup),
    T0 = erlang:monotonic_time(nanosecond),
    gen_server:cast(Old, crash),
    wait_new(Sup, Old),
    (erlang:monotonic_time(nanosecond) - T0) / 1000.

wait_new(Sup, Old) ->
    case child(Sup) of
        Pid when is_pid(Pid), Pid =/= Old ->
            pong = gen_server:call(Pid, ping);
        _ ->
            wait_new(Sup, Old)
    end.

child(Sup) ->
    [{w, Pid, worker, _}] = supervisor:which_children(Sup),
    Pid.

%% supervisor callback
init(sup) ->
    {ok, {#{strategy => one_for_one, intensity => 1000000000, period => 1},
          [#{id => w, start => {gen_server, start_link, [?MODULE, worker, []]}}]}};
%% gen_server callbacks
init(worker) -> {ok, 0}.

handle_call(ping, _From, S) -> {reply, pong, S}.
handle_cast(crash, _S) -> error(bench_crash).
